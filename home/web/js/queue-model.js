// The review queue's state without the DOM: the loaded frames, the focused tile, the
// selection and the undo stack. Views call these methods and re-render.

/** Labels the API accepts, as keys produce them. */
export const NOT_A_DIGIT = 'not_a_digit';

export class QueueModel {
  constructor() {
    this.frames = [];
    this.focus = 0;
    this.anchor = 0;
    this.selected = new Set();
    /** Each entry: the frame ids one action labelled, undone together by `u`. */
    this.undoStack = [];
  }

  reset(frames) {
    this.frames = frames;
    this.focus = 0;
    this.anchor = 0;
    this.selected.clear();
  }

  /** Appends a page, skipping frames already shown (pages can overlap while frames arrive). */
  append(frames) {
    const shown = new Set(this.frames.map((f) => f.frame_id));
    this.frames = this.frames.concat(frames.filter((f) => !shown.has(f.frame_id)));
  }

  /**
   * Drops frames the home pruned (they are gone from the data folder), keeping the focus on
   * the same frame when it stays; returns how many were shown.
   */
  remove(frameIds) {
    const gone = new Set(frameIds);
    const focused = this.focused?.frame_id;
    const before = this.frames.length;
    this.frames = this.frames.filter((f) => !gone.has(f.frame_id));
    for (const id of gone) this.selected.delete(id);
    const index = focused === undefined ? -1 : this.indexOf(focused);
    this.focus = index >= 0 ? index : Math.min(this.focus, Math.max(0, this.frames.length - 1));
    this.anchor = Math.min(this.anchor, Math.max(0, this.frames.length - 1));
    return before - this.frames.length;
  }

  get focused() {
    return this.frames[this.focus];
  }

  indexOf(frameId) {
    return this.frames.findIndex((f) => f.frame_id === frameId);
  }

  moveFocus(delta) {
    if (this.frames.length === 0) return;
    this.focus = Math.min(this.frames.length - 1, Math.max(0, this.focus + delta));
    this.anchor = this.focus;
  }

  focusAt(index) {
    if (index >= 0 && index < this.frames.length) {
      this.focus = index;
      this.anchor = index;
    }
  }

  /** After labelling: the next unlabelled tile after `from`, else simply the next one. */
  advanceFrom(from) {
    for (let i = from + 1; i < this.frames.length; i += 1) {
      if (this.frames[i].label === undefined) {
        this.focus = i;
        this.anchor = i;
        return;
      }
    }
    this.focus = Math.min(this.frames.length - 1, from + 1);
    this.anchor = this.focus;
  }

  /** Click with modifiers: plain focuses and clears, ctrl/meta toggles, shift selects a range. */
  click(index, { shift, toggle }) {
    if (shift) {
      const [a, b] = [Math.min(this.anchor, index), Math.max(this.anchor, index)];
      for (let i = a; i <= b; i += 1) this.selected.add(this.frames[i].frame_id);
      this.focus = index;
      return;
    }
    if (toggle) {
      const id = this.frames[index].frame_id;
      if (this.selected.has(id)) this.selected.delete(id);
      else this.selected.add(id);
      this.focus = index;
      this.anchor = index;
      return;
    }
    this.selected.clear();
    this.focusAt(index);
  }

  toggleFocused() {
    const f = this.focused;
    if (!f) return;
    if (this.selected.has(f.frame_id)) this.selected.delete(f.frame_id);
    else this.selected.add(f.frame_id);
  }

  /** Selects the loaded, unlabelled frames the model gave `predicted`. */
  selectGroup(predicted) {
    this.selected.clear();
    for (const f of this.frames) if (f.result_class === predicted && f.label === undefined) this.selected.add(f.frame_id);
    const first = this.frames.findIndex((f) => this.selected.has(f.frame_id));
    if (first >= 0) this.focusAt(first);
  }

  selectAll() {
    for (const f of this.frames) this.selected.add(f.frame_id);
  }

  /** Unlabelled frames per predicted class among the loaded ones. */
  groups() {
    const counts = new Array(10).fill(0);
    for (const f of this.frames) if (f.label === undefined) counts[f.result_class] += 1;
    return counts;
  }

  /** Sets (or clears, with undefined) the label shown on a tile; true when the tile is loaded. */
  setLabel(frameId, label, labelledAt) {
    const frame = this.frames.find((f) => f.frame_id === frameId);
    if (!frame) return false;
    if (label === null || label === undefined) {
      delete frame.label;
      delete frame.labelled_at;
    } else {
      frame.label = label;
      if (labelledAt) frame.labelled_at = labelledAt;
    }
    return true;
  }

  /** Frame counts per predicted class of the current selection. */
  selectedFrames() {
    return this.frames.filter((f) => this.selected.has(f.frame_id));
  }
}
