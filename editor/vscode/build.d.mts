// Types of build.mjs for the TypeScript that imports it (the spawned-server test).
import type { BuildResult } from 'esbuild';

export function bundleServer(outfile?: string): Promise<BuildResult>;
export function bundleClient(outfile?: string): Promise<BuildResult>;
