// Builds the page into node/web/static: the bundle (esbuild, from the locked npm
// packages), the pages, the stylesheet and Swagger UI's files for /docs, and a manifest
// of every input's and output's sha256 so a test can tell a stale or edited bundle.
// Usage: node build.mjs [OUT_DIR]
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || join(here, '..', 'node', 'web', 'static');
const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'docs'), { recursive: true });
await build({
  entryPoints: [join(here, 'src', 'main.js')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  minify: true,
  target: ['es2022'],
  legalComments: 'eof',
  charset: 'utf8',
  logLevel: 'warning',
});
for (const name of ['index.html', 'observer.html', 'docs.html', 'app.css']) {
  copyFileSync(join(here, 'src', name), join(out, name));
}
copyFileSync(join(here, 'src', 'docs-init.js'), join(out, 'docs', 'docs-init.js'));
const swagger = join(here, 'node_modules', 'swagger-ui-dist');
for (const name of ['swagger-ui-bundle.js', 'swagger-ui.css', 'LICENSE']) {
  copyFileSync(join(swagger, name), join(out, 'docs', name));
}

const inputs = ['build.mjs', 'package.json', 'package-lock.json', ...readdirSync(join(here, 'src')).sort().map((n) => `src/${n}`)];
const outputs = [];
const walk = (dir) => {
  for (const name of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = join(dir, name.name);
    if (name.isDirectory()) walk(path);
    else if (name.name !== 'manifest.json') outputs.push(relative(out, path));
  }
};
walk(out);
const manifest = {
  inputs: Object.fromEntries(inputs.map((p) => [p, sha256(join(here, p))])),
  outputs: Object.fromEntries(outputs.map((p) => [p, sha256(join(out, p))])),
};
writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`built ${outputs.length} files into ${out}`);
