// Byte ranges of one file over HTTP: `Range: bytes=a-b` requests answered 206 with Content-Range.
// Ranges asked for together (in one synchronous run, e.g. a Promise.all) are coalesced when
// adjacent, and no request asks for more than maxRequestBytes. A server that ignores Range (200)
// is read with one whole-file GET instead, after a warning. Browser-safe.
import { HfWeightsError } from './tensor-reader.js';

export interface HttpRangeOptions {
  /** The fetch to use (default globalThis.fetch). */
  fetch?: typeof fetch;
  /** Told when a server ignores Range requests and a whole file is downloaded instead (default console.warn). */
  onWarning?: (message: string) => void;
  /** The most bytes one Range request asks for (default DEFAULT_MAX_REQUEST_BYTES). */
  maxRequestBytes?: number;
}

/** 64 MiB: few requests for a GB-sized expert tensor, and little held per response. */
export const DEFAULT_MAX_REQUEST_BYTES = 64 * 2 ** 20;

/** Requests in flight at once for one coalesced run of bytes (browsers open about 6 per host). */
const PARALLEL_REQUESTS = 4;

/** What a file's reads have cost: requests made and body bytes received. */
export interface TransferCount {
  requests: number;
  bytes: number;
}

interface PendingRead {
  begin: number;
  end: number; // exclusive
  /** For errors: what the bytes are, e.g. `tensor "x"`. */
  what: string;
  resolve(bytes: Uint8Array): void;
  reject(error: unknown): void;
}

/** `bytes a-b/total` (total may be `*`); undefined when the header is missing or malformed. */
function parseContentRange(value: string | null): { first: number; last: number; total: number | undefined } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  return m ? { first: Number(m[1]), last: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) } : undefined;
}

/** Names the things a request serves, for its errors: one, or the first few and a count. */
function describeAll(whats: readonly string[]): string {
  const unique = [...new Set(whats)];
  return unique.length <= 3 ? unique.join(', ') : `${unique.slice(0, 3).join(', ')} and ${unique.length - 3} more`;
}

/** One file at `url`, read by byte ranges. */
export class HttpRangeFile {
  /** The file's size in bytes, known after the first response. */
  size: number | undefined;
  /** The whole file, once a server answered a Range request with 200. */
  private whole: Uint8Array | undefined;
  /** Settles with the first response, so a server's Range support is known before requests run in parallel. */
  private firstResponse: Promise<unknown> | undefined;
  private pending: PendingRead[] = [];
  private readonly fetchFn: typeof fetch;
  private readonly maxRequestBytes: number;

  constructor(readonly url: string, private readonly options: HttpRangeOptions, private readonly transferred: TransferCount) {
    const given = options.fetch;
    // Called as a plain function: a browser's fetch throws "Illegal invocation" when called as a method of another object.
    this.fetchFn = given ? (input, init) => given(input, init) : (input, init) => globalThis.fetch(input, init);
    this.maxRequestBytes = Math.max(1, Math.floor(options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES));
  }

  /**
   * Bytes [begin, end) of the file. `what` names them in errors. Reads asked for before the
   * current synchronous run ends are fetched together. The result may share memory with other reads.
   */
  read(begin: number, end: number, what: string): Promise<Uint8Array> {
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin) {
      return Promise.reject(new HfWeightsError(`${this.url}: ${what}: bytes [${begin}, ${end}) are not a range`));
    }
    if (end === begin) return Promise.resolve(new Uint8Array(0));
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) queueMicrotask(() => this.flush());
      this.pending.push({ begin, end, what, resolve, reject });
    });
  }

  /** Merges the pending reads into runs of adjacent bytes and fetches each run. */
  private flush(): void {
    const reads = this.pending.sort((a, b) => a.begin - b.begin || a.end - b.end);
    this.pending = [];
    let run: PendingRead[] = [];
    let runEnd = 0;
    for (const read of reads) {
      if (run.length && read.begin > runEnd) {
        void this.fetchRun(run, runEnd);
        run = [];
      }
      run.push(read);
      runEnd = Math.max(runEnd, read.end);
    }
    if (run.length) void this.fetchRun(run, runEnd);
  }

  /** Fetches bytes [reads[0].begin, end) in requests of at most maxRequestBytes and hands each read its part. */
  private async fetchRun(reads: PendingRead[], end: number): Promise<void> {
    const begin = reads[0]!.begin;
    const pieces: Array<{ begin: number; end: number }> = [];
    for (let b = begin; b < end; b += this.maxRequestBytes) pieces.push({ begin: b, end: Math.min(end, b + this.maxRequestBytes) });
    const whatOf = (piece: { begin: number; end: number }) =>
      describeAll(reads.filter((r) => r.begin < piece.end && r.end > piece.begin).map((r) => r.what));
    let bytes: Uint8Array = new Uint8Array(0);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (next < pieces.length && !failed) {
        const piece = pieces[next++]!;
        const got = await this.fetchPiece(piece.begin, piece.end, whatOf(piece));
        if (pieces.length === 1) bytes = got; // no copy for a run that fits one request
        else bytes.set(got, piece.begin - begin);
      }
    };
    if (pieces.length > 1) bytes = new Uint8Array(end - begin);
    try {
      await Promise.all(Array.from({ length: Math.min(PARALLEL_REQUESTS, pieces.length) }, () => worker().catch((e) => {
        failed = true;
        throw e;
      })));
    } catch (error) {
      for (const read of reads) read.reject(error);
      return;
    }
    for (const read of reads) read.resolve(bytes.subarray(read.begin - begin, read.end - begin));
  }

  /** One request for bytes [begin, end); the first one to a file goes alone. */
  private async fetchPiece(begin: number, end: number, what: string): Promise<Uint8Array> {
    if (!this.firstResponse) {
      const first = this.fetchRange(begin, end, what);
      this.firstResponse = first.catch(() => undefined);
      return first;
    }
    await this.firstResponse;
    return this.whole ? this.sliceWhole(begin, end, this.failure(begin, end, what)) : this.fetchRange(begin, end, what);
  }

  /** Throws an error naming the URL, what was being read and its bytes; cancels `response`'s body to free the connection. */
  private failure(begin: number, end: number, what: string): (message: string, response?: Response) => never {
    return (message, response) => {
      void response?.body?.cancel().catch(() => undefined);
      throw new HfWeightsError(`${this.url}: ${message} (reading ${what}, bytes ${begin}-${end - 1})`);
    };
  }

  private async fetchRange(begin: number, end: number, what: string): Promise<Uint8Array> {
    const fail = this.failure(begin, end, what);
    let response: Response;
    try {
      response = await this.fetchFn(this.url, { headers: { Range: `bytes=${begin}-${end - 1}` } });
    } catch (error) {
      return fail(`fetch failed: ${(error as Error).message}`);
    }
    this.transferred.requests++;
    if (response.status === 200) return this.fallBackToWholeFile(response, begin, end, fail);
    if (response.status === 416) {
      const total = /\/(\d+)$/.exec(response.headers.get('content-range') ?? '')?.[1]; // `bytes */size`
      return fail(`HTTP 416 Range Not Satisfiable: the file is ${total === undefined ? 'shorter' : `${total} bytes`}`, response);
    }
    if (response.status !== 206) return fail(`HTTP ${response.status} ${response.statusText}`.trim(), response);
    const range = parseContentRange(response.headers.get('content-range'));
    if (!range) return fail(`HTTP 206 without a usable Content-Range (got ${JSON.stringify(response.headers.get('content-range'))})`, response);
    if (range.total === undefined) return fail('HTTP 206 without the file size in Content-Range (bytes a-b/*)', response);
    if (this.size !== undefined && range.total !== this.size) {
      return fail(`the file changed size while being read (${this.size} bytes, now ${range.total})`, response);
    }
    this.size = range.total;
    if (range.first !== begin || range.last > end - 1) fail(`the server sent bytes ${range.first}-${range.last} instead`, response);
    if (range.last < end - 1) fail(`the file ends at byte ${range.total}, before the bytes asked for`, response);
    const body = await bodyOf(response, fail);
    this.transferred.bytes += body.byteLength;
    if (body.byteLength !== end - begin) fail(`the response body is ${body.byteLength} bytes, expected ${end - begin}`);
    return body;
  }

  /** A 200 to a Range request: the server ignores Range, so the whole file is read once and kept. */
  private async fallBackToWholeFile(response: Response, begin: number, end: number, fail: (message: string) => never): Promise<Uint8Array> {
    const length = response.headers.get('content-length');
    const warn = this.options.onWarning ?? ((message: string) => console.warn(message));
    warn(`${this.url}: the server ignored a Range request (HTTP 200, not 206); downloading the whole file` +
      `${length === null ? '' : ` (${length} bytes)`} instead`);
    const whole = await bodyOf(response, fail);
    this.transferred.bytes += whole.byteLength;
    if (this.size !== undefined && whole.byteLength !== this.size) fail(`the file changed size while being read (${this.size} bytes, now ${whole.byteLength})`);
    this.whole = whole;
    this.size = whole.byteLength;
    return this.sliceWhole(begin, end, fail);
  }

  private sliceWhole(begin: number, end: number, fail: (message: string) => never): Uint8Array {
    const whole = this.whole!;
    if (end > whole.byteLength) fail(`the file is ${whole.byteLength} bytes, it ends before the bytes asked for`);
    return whole.subarray(begin, end);
  }
}

/** A response's body; a connection that fails midway is reported through `fail`. */
async function bodyOf(response: Response, fail: (message: string) => never): Promise<Uint8Array> {
  try {
    return new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    return fail(`the response body could not be read: ${(error as Error).message}`);
  }
}
