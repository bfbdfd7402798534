// htm bound to preact's h: JSX-like templates without a build step. Text interpolated into
// templates is always set as text by preact, so camera ids, reasons and errors stay text.
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);
