// uPlot charts as preact components: the chart is built once per mount and fed new data
// with setData, so live updates do not rebuild canvases.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './html.js';

const AXIS = {
  stroke: '#8b95a5',
  grid: { stroke: '#262b35', width: 1 },
  ticks: { stroke: '#262b35', width: 1 },
  font: '11px system-ui, sans-serif',
};

/** Series colours, in order. */
export const COLORS = ['#4c9aff', '#f5a524', '#3ecf8e', '#e5534b', '#b083f0', '#39c5cf', '#d4a72c', '#ec6cb9'];

/** Cursor sync between the charts of one group (hovering one chart shows the time in all). */
const syncs = new Map();
function syncKey(group) {
  if (!syncs.has(group)) syncs.set(group, uPlot.sync(group));
  return group;
}

/** Tick labels HH:MM (HH:MM:SS when ticks are under a minute apart), in the viewer's time zone. */
function timeTicks(splits) {
  const step = splits.length > 1 ? splits[1] - splits[0] : 60;
  return splits.map((value) => {
    const text = new Date(value * 1000).toLocaleTimeString('en-GB', { hour12: false });
    return step < 60 ? text : text.slice(0, 5);
  });
}

/**
 * The x range from the data itself: uPlot widens a lone point to days, which would label
 * every tick 00:00. Spans under `minSpan` seconds end at the newest point.
 */
function timeRange(xs, min, max, minSpan) {
  if (!xs || xs.length === 0) return [min, max];
  const first = xs[0];
  const last = xs[xs.length - 1];
  return last - first >= minSpan ? [first, last] : [last - minSpan, last + minSpan / 20];
}

/** Whole-number steps for axes that count things. */
const COUNT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

/**
 * Builds the chart once and feeds it `data`. After every draw the chart's figure carries
 * `data-drawn` = `drawnMark(data drawn)`, so a reader (or a test) knows what the canvas shows.
 */
function useUplot(makeOptions, data, deps, drawnMark) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const element = box.current;
    const width = Math.max(200, element.clientWidth);
    const options = makeOptions(width);
    const markDrawn = (u) => element.parentElement?.setAttribute('data-drawn', String(drawnMark(u.data)));
    options.hooks = { ...options.hooks, draw: [...(options.hooks?.draw ?? []), markDrawn] };
    plot.current = new uPlot(options, data, element);
    const observer = new ResizeObserver(() => {
      const w = Math.max(200, element.clientWidth);
      if (plot.current && Math.abs(plot.current.width - w) > 1) plot.current.setSize({ width: w, height: plot.current.height });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, deps);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  return box;
}

/**
 * A time series chart. `data` is uPlot's columnar form: [x seconds since epoch, ...ys], with
 * null for a missing value. `format` renders y values on the axis and in the legend; the
 * time axis spans at least `minSpan` seconds; `counts` keeps the y ticks on whole numbers.
 */
export function TimeChart({
  testid,
  title,
  series,
  data,
  format = (v) => String(v),
  height = 150,
  group = 'live',
  yMin,
  minSpan = 60,
  counts = false,
}) {
  const points = data[0]?.length ?? 0;
  const box = useUplot(
    (width) => ({
      width,
      height,
      cursor: { sync: { key: syncKey(group) } },
      legend: { live: true },
      scales: {
        // A lone point (one window so far) still gets a readable time axis.
        x: {
          time: true,
          range: (u, min, max) => timeRange(u.data[0], min, max, minSpan),
        },
        y: yMin === undefined ? {} : { range: (_u, _min, max) => [yMin, Math.max(max, yMin + 1e-9)] },
      },
      axes: [
        { ...AXIS, space: 70, values: (_u, splits) => timeTicks(splits) },
        { ...AXIS, size: 56, values: (_u, values) => values.map((v) => format(v)), ...(counts ? { incrs: COUNT_INCRS } : {}) },
      ],
      series: [
        { label: 'at', value: (_u, v) => (v === null ? '–' : new Date(v * 1000).toLocaleTimeString('en-GB', { hour12: false })) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color ?? COLORS[i % COLORS.length],
          width: 1.5,
          spanGaps: false,
          points: { size: 4 },
          value: (_u, v) => (v === null || v === undefined ? '–' : format(v)),
        })),
      ],
    }),
    data,
    [series.map((s) => s.label).join('|'), height, group],
    (drawn) => drawn[0]?.length ?? 0,
  );
  return html`<figure class="chart" data-testid=${testid} data-points=${points}>
    <figcaption>${title}</figcaption>
    <div ref=${box} class="chart-canvas"></div>
  </figure>`;
}

/** Certain and uncertain frames per digit as grouped bars (x = digit 0-9). */
export function DigitBars({ testid, title, certain, uncertain, height = 150 }) {
  const digits = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const data = [digits, certain, uncertain];
  const total = certain.reduce((a, b) => a + b, 0) + uncertain.reduce((a, b) => a + b, 0);
  const box = useUplot(
    (width) => ({
      width,
      height,
      legend: { live: false },
      cursor: { show: true, points: { show: false }, drag: { x: false, y: false } },
      scales: { x: { time: false, range: [-0.6, 9.6] }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [
        { ...AXIS, splits: () => digits, values: (_u, values) => values.map((v) => String(v)), grid: { show: false } },
        { ...AXIS, size: 44 },
      ],
      series: [
        {},
        {
          label: 'certain',
          fill: '#4c9affcc',
          stroke: '#4c9aff',
          width: 0,
          paths: uPlot.paths.bars({ size: [0.38, 40], align: -1 }),
          points: { show: false },
        },
        {
          label: 'uncertain',
          fill: '#f5a524cc',
          stroke: '#f5a524',
          width: 0,
          paths: uPlot.paths.bars({ size: [0.38, 40], align: 1 }),
          points: { show: false },
        },
      ],
    }),
    data,
    [height],
    (drawn) => drawn.slice(1).reduce((n, column) => n + column.reduce((a, b) => a + (b ?? 0), 0), 0),
  );
  return html`<figure class="chart" data-testid=${testid} data-points=${total}>
    <figcaption>${title}</figcaption>
    <div ref=${box} class="chart-canvas"></div>
  </figure>`;
}
