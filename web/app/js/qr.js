// QR codes drawn on a canvas from qrcode-generator's module matrix (the
// library's own SVG and GIF output are markup strings, which this
// app never uses).

import { qrcode } from '../vendor/vendor.js';
import { h } from './ui.js';

// qrCanvas returns a canvas with text as a QR code. An invite uses only
// the QR alphanumeric alphabet, so the code stays small.
export function qrCanvas(text, label) {
  const q = qrcode(0, 'M');
  q.addData(text, /^[0-9A-Z $%*+\-./:]*$/.test(text) ? 'Alphanumeric' : 'Byte');
  q.make();
  const n = q.getModuleCount();
  const quiet = 4;
  const scale = Math.max(2, Math.floor(480 / (n + 2 * quiet)));
  const size = (n + 2 * quiet) * scale;
  const c = h('canvas.qr', { width: size, height: size, role: 'img', 'aria-label': label });
  const g = c.getContext('2d');
  g.fillStyle = '#fff';
  g.fillRect(0, 0, size, size);
  g.fillStyle = '#000';
  for (let r = 0; r < n; r++) {
    for (let col = 0; col < n; col++) {
      if (q.isDark(r, col)) g.fillRect((col + quiet) * scale, (r + quiet) * scale, scale, scale);
    }
  }
  return c;
}
