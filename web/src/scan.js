// Reading a tracking code from a QR code with the camera, and drawing one. The browser's
// own BarcodeDetector where it reads QR codes; elsewhere (Chromium on Linux, Firefox)
// frames are decoded here with the `qr` package's reader, bundled into the page.
import decodeQR from 'qr/decode.js';
import encodeQR from 'qr';

const CODE = /^(?:0x)?([0-9a-fA-F]{64})$/;
const FRAME_INTERVAL_MS = 120;
const MAX_FRAME_WIDTH = 960; // frames are scaled down to this before decoding
const SVG = 'http://www.w3.org/2000/svg';

/** The tracking code a QR code holds: the code itself, or a receipt page's address
 * with ?code=...; null for anything else. */
export function codeFromText(text) {
  const trimmed = String(text).trim();
  const plain = CODE.exec(trimmed);
  if (plain) return plain[1].toLowerCase();
  try {
    const fromUrl = new URL(trimmed).searchParams.get('code');
    const match = fromUrl && CODE.exec(fromUrl);
    return match ? match[1].toLowerCase() : null;
  } catch {
    return null;
  }
}

async function qrDetector() {
  if (typeof BarcodeDetector === 'undefined') return null;
  try {
    const formats = await BarcodeDetector.getSupportedFormats();
    return formats.includes('qr_code') ? new BarcodeDetector({ formats: ['qr_code'] }) : null;
  } catch {
    return null;
  }
}

function frameReader(video) {
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  return () => {
    const scale = Math.min(1, MAX_FRAME_WIDTH / video.videoWidth);
    const width = Math.round(video.videoWidth * scale);
    const height = Math.round(video.videoHeight * scale);
    if (!width || !height) return null;
    canvas.width = width;
    canvas.height = height;
    ctx.drawImage(video, 0, 0, width, height);
    try {
      return decodeQR(ctx.getImageData(0, 0, width, height));
    } catch {
      return null; // no QR code in this frame
    }
  };
}

/** Start the camera into `video` and read frames until a QR code is found: `onText`
 * gets its text (and may return true to stop). Returns a function that stops it all. */
export async function scan(video, onText) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  let stopped = false;
  let timer = null;
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  };
  video.srcObject = stream;
  await video.play();
  const detector = await qrDetector();
  const read = detector
    ? async () => ((await detector.detect(video))[0] || {}).rawValue || null
    : frameReader(video);
  const tick = async () => {
    if (stopped) return;
    const text = video.readyState >= 2 ? await read() : null;
    if (text !== null && onText(text)) stop();
    else if (!stopped) timer = setTimeout(tick, FRAME_INTERVAL_MS);
  };
  tick();
  return stop;
}

/** The modules of `text` as a QR code, with the four-module quiet zone readers expect. */
export function qrModules(text) {
  return encodeQR(text, 'raw', { ecc: 'medium', border: 4 });
}

/** An SVG drawing of `text` as a QR code (dark modules as one path), labelled for
 * screen readers with `label` (an element's aria-label, or its data-i18n-label keys). */
export function qrSvg(text, label) {
  const grid = qrModules(text);
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${grid.length} ${grid.length}`);
  svg.setAttribute('role', 'img');
  for (const [k, v] of Object.entries(label)) svg.setAttribute(k, v);
  svg.setAttribute('shape-rendering', 'crispEdges');
  const background = document.createElementNS(SVG, 'rect');
  background.setAttribute('width', '100%');
  background.setAttribute('height', '100%');
  background.setAttribute('fill', '#fff');
  let d = '';
  grid.forEach((row, y) => row.forEach((dark, x) => {
    if (dark) d += `M${x} ${y}h1v1h-1z`;
  }));
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', '#000');
  svg.append(background, path);
  return svg;
}
