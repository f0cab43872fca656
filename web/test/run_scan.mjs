// The scanner's reading of a QR code's text (src/scan.js): the tracking code it holds,
// as a bare code or inside the address the page draws; and that a drawn code, rendered
// into a camera-sized picture, is read back by the reader the page bundles.
import decodeQR from 'qr/decode.js';
import { codeFromText, qrModules } from '../src/scan.js';

const code = process.argv[2];
const texts = [
  code, code.toUpperCase(), `0x${code}`, ` ${code}\n`, `http://127.0.0.1:8080/receipt?code=${code}`,
  `https://vote.example/ballot-ledger/receipt?lang=ko&code=${code.toUpperCase()}`,
  code.slice(1), `${code}0`, `g${code.slice(1)}`, 'http://vote.example/receipt?code=xyz', 'https://vote.example/', '',
];
const modules = qrModules(`http://127.0.0.1:8080/receipt?code=${code}`);
const width = 640;
const height = 480;
const scale = Math.floor((height * 0.9) / modules.length);
const left = Math.floor((width - scale * modules.length) / 2);
const top = Math.floor((height - scale * modules.length) / 2);
const data = new Uint8ClampedArray(width * height * 4).fill(255);
modules.forEach((row, y) => row.forEach((dark, x) => {
  if (!dark) return;
  for (let dy = 0; dy < scale; dy++) {
    for (let dx = 0; dx < scale; dx++) {
      const at = ((top + y * scale + dy) * width + left + x * scale + dx) * 4;
      data[at] = data[at + 1] = data[at + 2] = 0;
    }
  }
}));
process.stdout.write(JSON.stringify({
  codes: texts.map(codeFromText),
  drawn: codeFromText(decodeQR({ width, height, data })),
}));
