/// <reference types="@webgpu/types" />
// GPU buffers: a reuse pool for activations, uploads, and the runtime's single GPU -> CPU path.

/** Smallest bucket; also a multiple of minStorageBufferOffsetAlignment (256). */
export const MIN_BUCKET_BYTES = 256;

/** A quiet-NaN f32: any element still holding it after a kernel ran was never written. */
export const POISON_BITS = 0x7fc00000;
/** Two quiet-NaN f16s, for buffers of f16 (POISON_BITS would read as 0 and NaN there). */
export const POISON_BITS_F16 = 0x7e007e00;

const alignTo = (n: number, alignment: number): number => Math.ceil(n / alignment) * alignment;

/**
 * The pool bucket for a request: the next power of two >= 256 bytes. Above
 * `maxBufferSize` that would be refused, so the size is only rounded to 256 there.
 */
export function bucketSize(byteLength: number, maxBufferSize = Number.POSITIVE_INFINITY): number {
  if (!Number.isSafeInteger(byteLength) || byteLength < 0) {
    throw new RangeError(`buffer size ${byteLength} is not a non-negative integer`);
  }
  const bucket = Math.max(MIN_BUCKET_BYTES, 2 ** Math.ceil(Math.log2(Math.max(1, byteLength))));
  return bucket <= maxBufferSize ? bucket : alignTo(byteLength, MIN_BUCKET_BYTES);
}

/**
 * Reuses buffers across dispatches. Buffers come back larger than asked (their
 * bucket), so bind them with an explicit size. Weights do not belong here: a
 * power-of-two bucket can waste up to half of a large buffer.
 */
export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly inUse = new Set<GPUBuffer>();
  private created = 0;
  private bytes = 0;

  constructor(readonly device: GPUDevice) {}

  acquire(byteLength: number, usage: GPUBufferUsageFlags, label?: string): GPUBuffer {
    const size = bucketSize(byteLength, this.device.limits.maxBufferSize);
    const reusable = this.free.get(`${size}:${usage}`)?.pop();
    const buffer = reusable ?? this.create(size, usage, label);
    this.inUse.add(buffer);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    if (!this.inUse.delete(buffer)) {
      throw new Error(`buffer "${buffer.label}" was not acquired from this pool, or was released twice`);
    }
    const key = `${buffer.size}:${buffer.usage}`;
    const list = this.free.get(key);
    if (list) list.push(buffer);
    else this.free.set(key, [buffer]);
  }

  stats(): { created: number; inUse: number; free: number; bytes: number } {
    let free = 0;
    for (const list of this.free.values()) free += list.length;
    return { created: this.created, inUse: this.inUse.size, free, bytes: this.bytes };
  }

  /** Destroys the idle buffers (buffers in use stay valid). */
  trim(): void {
    for (const list of this.free.values()) for (const buffer of list) this.forget(buffer);
    this.free.clear();
  }

  /** Destroys every buffer the pool made, in use or not. */
  destroy(): void {
    this.trim();
    for (const buffer of this.inUse) this.forget(buffer);
    this.inUse.clear();
  }

  private create(size: number, usage: GPUBufferUsageFlags, label?: string): GPUBuffer {
    this.created++;
    this.bytes += size;
    return this.device.createBuffer({ label: label ?? `pool ${size}`, size, usage });
  }

  private forget(buffer: GPUBuffer): void {
    this.bytes -= buffer.size;
    buffer.destroy();
  }
}

/** Creates a buffer holding `data` (COPY_DST is added so it can be rewritten later). */
export function uploadBytes(device: GPUDevice, data: ArrayBufferView, usage: GPUBufferUsageFlags, label?: string): GPUBuffer {
  const size = alignTo(Math.max(data.byteLength, 4), 4); // mapped ranges must be 4-byte multiples
  const buffer = device.createBuffer({ label, size, usage: usage | GPUBufferUsage.COPY_DST, mappedAtCreation: true });
  new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buffer.unmap();
  return buffer;
}

export function uploadF32(device: GPUDevice, data: Float32Array, usage: GPUBufferUsageFlags, label?: string): GPUBuffer {
  return uploadBytes(device, data, usage, label);
}

export function uploadU32(device: GPUDevice, data: Uint32Array, usage: GPUBufferUsageFlags, label?: string): GPUBuffer {
  return uploadBytes(device, data, usage, label);
}

let readbacks = 0;

/** How many GPU -> CPU reads the runtime has made (tests assert none happen mid-layer). */
export function readbackCount(): number {
  return readbacks;
}

/**
 * A MAP_READ staging buffer kept between reads, and the runtime's only GPU -> CPU path: encode
 * the copy into the same command encoder as the work that produces the data (one submit), submit,
 * then `read()`. It grows to the largest read seen (in pool buckets; `oneOff` sizes it exactly and
 * is for a single read). While a read is in flight the buffer is mapped, so a second concurrent
 * read gets a temporary staging buffer of its own. A copy not read (its submit failed, say) is
 * replaced by the next copyFrom().
 */
export class ReadbackStaging {
  private buffer: GPUBuffer | undefined;
  private busy = false;
  private pending: { staging: GPUBuffer | undefined; byteLength: number; temporary: boolean } | undefined;

  constructor(
    readonly device: GPUDevice,
    readonly label = 'readback staging',
    private readonly oneOff = false,
  ) {}

  /** Encodes a copy of `byteLength` bytes of `source` (which needs COPY_SRC) at `sourceOffset`. */
  copyFrom(encoder: GPUCommandEncoder, source: GPUBuffer, byteLength: number, sourceOffset = 0): void {
    if (byteLength % 4 !== 0 || sourceOffset % 4 !== 0) {
      throw new RangeError(`readBack of ${byteLength} bytes at offset ${sourceOffset}: both must be multiples of 4`);
    }
    if (sourceOffset + byteLength > source.size) {
      throw new RangeError(`readBack of ${byteLength} bytes at offset ${sourceOffset} runs past buffer "${source.label}" (${source.size} bytes)`);
    }
    if (this.pending?.temporary) this.pending.staging?.destroy();
    this.pending = undefined;
    if (byteLength === 0) {
      this.pending = { staging: undefined, byteLength, temporary: false };
      return;
    }
    const temporary = this.busy;
    const staging = temporary ? this.create(byteLength) : this.reusable(byteLength);
    encoder.copyBufferToBuffer(source, sourceOffset, staging, 0, byteLength);
    this.pending = { staging, byteLength, temporary };
  }

  /** After the encoder with copyFrom() was submitted: waits for the GPU and returns a copy of the bytes. */
  async read(): Promise<ArrayBuffer> {
    const pending = this.pending;
    if (!pending) throw new Error(`${this.label}: read() without copyFrom()`);
    this.pending = undefined;
    readbacks++;
    const { staging, byteLength, temporary } = pending;
    if (!staging) return new ArrayBuffer(0);
    if (!temporary) this.busy = true;
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, byteLength);
      const bytes = staging.getMappedRange(0, byteLength).slice(0); // copy out: the mapped range detaches on unmap
      staging.unmap();
      return bytes;
    } finally {
      if (temporary) staging.destroy();
      else this.busy = false;
    }
  }

  destroy(): void {
    this.buffer?.destroy();
    this.buffer = undefined;
  }

  private reusable(byteLength: number): GPUBuffer {
    if (this.buffer && this.buffer.size >= byteLength) return this.buffer;
    this.buffer?.destroy();
    this.buffer = this.create(this.oneOff ? byteLength : bucketSize(byteLength, this.device.limits.maxBufferSize));
    return this.buffer;
  }

  private create(size: number): GPUBuffer {
    return this.device.createBuffer({ label: this.label, size: alignTo(size, 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }
}

/** A one-off read of `byteLength` bytes of `source` (needs COPY_SRC), through a temporary staging buffer. */
export async function readBackBytes(
  device: GPUDevice,
  source: GPUBuffer,
  byteLength: number,
  sourceOffset = 0,
): Promise<ArrayBuffer> {
  const staging = new ReadbackStaging(device, 'readback staging', true);
  try {
    const encoder = device.createCommandEncoder({ label: 'readback' });
    staging.copyFrom(encoder, source, byteLength, sourceOffset);
    device.queue.submit([encoder.finish()]);
    return await staging.read();
  } finally {
    staging.destroy();
  }
}

export async function readBackF32(device: GPUDevice, source: GPUBuffer, byteLength: number, sourceOffset = 0): Promise<Float32Array> {
  return new Float32Array(await readBackBytes(device, source, byteLength, sourceOffset));
}

export async function readBackU32(device: GPUDevice, source: GPUBuffer, byteLength: number, sourceOffset = 0): Promise<Uint32Array> {
  return new Uint32Array(await readBackBytes(device, source, byteLength, sourceOffset));
}

/** Fills `byteLength` bytes of `buffer` (needs COPY_DST) with NaN bits (`bits`, per 4 bytes), so unwritten outputs show. */
export function poison(device: GPUDevice, buffer: GPUBuffer, byteLength: number, offset = 0, bits = POISON_BITS): void {
  if (byteLength % 4 !== 0 || offset % 4 !== 0) {
    throw new RangeError(`poison of ${byteLength} bytes at offset ${offset}: both must be multiples of 4`);
  }
  const chunkBytes = Math.min(byteLength, 4 << 20); // bounded host memory for big buffers
  const chunk = new Uint32Array(chunkBytes / 4).fill(bits);
  for (let done = 0; done < byteLength; done += chunkBytes) {
    device.queue.writeBuffer(buffer, offset + done, chunk, 0, Math.min(chunkBytes, byteLength - done) / 4);
  }
}
