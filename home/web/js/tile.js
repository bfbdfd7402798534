// One frame of the review queue: original image, the prepared 28x28 input enlarged with
// crisp pixels, the ten probabilities with the top two marked, and its label.
import { clock, labelText, prob } from './format.js';
import { html } from './html.js';

/** Short names of the reasons a frame was sent home. */
const REASONS = { low_confidence: 'low conf.', test_camera: 'test cam' };

/** Indices of the two largest probabilities. */
export function topTwo(probabilities) {
  let first = 0;
  let second = -1;
  for (let i = 1; i < probabilities.length; i += 1) {
    if (probabilities[i] > probabilities[first]) {
      second = first;
      first = i;
    } else if (second < 0 || probabilities[i] > probabilities[second]) {
      second = i;
    }
  }
  return [first, second];
}

function ProbabilityBars({ probabilities, label }) {
  const [first, second] = topTwo(probabilities);
  return html`<div class="probs" role="img" aria-label=${`probabilities: ${probabilities.map((p, d) => `${d} ${prob(p)}`).join(', ')}`}>
    ${probabilities.map((p, digit) => {
      const rank = digit === first ? 'top1' : digit === second ? 'top2' : '';
      const isLabel = label === digit ? ' is-label' : '';
      return html`<div class=${`prob ${rank}${isLabel}`} key=${digit} title=${`${digit}: ${prob(p)}`}>
        <div class="prob-track"><div class="prob-bar" style=${{ height: `${Math.max(p * 100, 0.8)}%` }}></div></div>
        <span class="prob-digit">${digit}</span>
      </div>`;
    })}
  </div>`;
}

/** Marks small originals (MNIST frames are 28x28) for pixelated scaling once they load. */
function onOriginalLoad(event) {
  const img = event.currentTarget;
  if (img.naturalWidth <= 64) img.classList.add('pixelated');
}

export function Tile({ frame, focused, selected, pending, onClick }) {
  const [first, second] = topTwo(frame.probabilities);
  const labelled = frame.label !== undefined;
  const agrees = labelled && frame.label === frame.result_class;
  return html`<article
    class=${`tile${focused ? ' focused' : ''}${selected ? ' selected' : ''}${labelled ? ' labelled' : ''}`}
    id=${`tile-${frame.frame_id}`}
    data-testid="tile"
    data-frame-id=${frame.frame_id}
    data-predicted=${frame.result_class}
    data-label=${labelled ? String(frame.label) : undefined}
    data-pending=${pending ? 'true' : undefined}
    aria-current=${focused ? 'true' : undefined}
    aria-selected=${selected ? 'true' : 'false'}
    onClick=${onClick}
  >
    <header class="tile-head">
      <span class="tile-camera ellipsis" title=${frame.camera}>${frame.camera}</span>
      <span class="chip reason" title=${`sent home: ${frame.reason}`}>${REASONS[frame.reason] ?? frame.reason}</span>
      <span class="tile-time mono" title=${frame.timestamp}>${clock(frame.timestamp)}</span>
    </header>
    <div class="tile-images">
      <figure>
        ${
          frame.image_url
            ? html`<img src=${frame.image_url} alt="original frame" loading="lazy" decoding="async" onLoad=${onOriginalLoad} />`
            : html`<div class="no-image" title="the original was too large for the stream record">original omitted</div>`
        }
        <figcaption>original</figcaption>
      </figure>
      <figure>
        <img class="pixelated" src=${frame.prepared_url} alt="prepared 28x28 input" loading="lazy" decoding="async" width="84" height="84" />
        <figcaption>model input</figcaption>
      </figure>
    </div>
    <${ProbabilityBars} probabilities=${frame.probabilities} label=${frame.label} />
    <footer class="tile-foot">
      <span class="guess" title="the model's guess and the runner-up">
        <b class="top1-text">${first}</b> ${prob(frame.probabilities[first])}<span class="muted"> · ${second} ${prob(frame.probabilities[second])}</span>
      </span>
      ${
        frame.camera_label !== undefined && frame.camera_label !== null
          ? html`<span class="muted camera-label" title="the label the camera sent with the frame">cam ${frame.camera_label}</span>`
          : null
      }
      ${
        labelled
          ? html`<span class=${`label-badge${agrees ? ' agrees' : ' differs'}`} data-testid="tile-label" title="the label given">${labelText(frame.label)}</span>`
          : html`<span class="label-badge none" title="not labelled yet">–</span>`
      }
    </footer>
    ${selected ? html`<span class="check" aria-hidden="true">✓</span>` : null}
  </article>`;
}
