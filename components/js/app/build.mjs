// Bundles src/index.js into build/bundle.js for j2w, as the Spin JS SDK's
// templates do: the WIT imports (`fermyon:spin/...`) stay external, bound
// when j2w componentizes the bundle.
import { build } from 'esbuild';

await build({
    entryPoints: ['./src/index.js'],
    outfile: './build/bundle.js',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    external: ['fermyon:*', 'wasi:*'],
    logLevel: 'error',
});
