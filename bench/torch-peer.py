# The PyTorch side of bench/gpu.sh (run only where torch sees a CUDA GPU): the machine's ceilings
# (a large device-to-device copy, large f32 and f16 matmuls, TF32 off) and the MoE layer the
# moec benches run (softmax top-k renormalised router, SwiGLU experts, f32) as transformers'
# modeling_mixtral.py runs it: a loop over the experts that tokens chose. Times are CUDA-event
# medians after warm-up; each row also says what fraction of the ceilings it reaches.
import statistics
import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device('cuda')


def timed(fn, reps=20, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)  # ms


def ceilings():
    n = 1 << 28  # 1 GiB of f32
    a, b = torch.empty(n, device=dev), torch.empty(n, device=dev)
    copy_ms = timed(lambda: b.copy_(a))
    copy_gbs = 2 * n * 4 / copy_ms / 1e6
    out = {'copy GB/s': copy_gbs}
    for dtype, name in [(torch.float32, 'f32'), (torch.float16, 'f16')]:
        s = 8192
        x, y = torch.randn(s, s, device=dev, dtype=dtype), torch.randn(s, s, device=dev, dtype=dtype)
        ms = timed(lambda: x @ y, reps=10)
        out[f'{name} matmul TFLOP/s'] = 2 * s ** 3 / ms / 1e9
    return out


def moe_layer(hidden, inter, experts, top_k):
    g = torch.Generator(device='cpu').manual_seed(0)
    w_router = (torch.randn(experts, hidden, generator=g) / hidden ** 0.5).to(dev)
    w_gate = (torch.randn(experts, inter, hidden, generator=g) / hidden ** 0.5).to(dev)
    w_up = (torch.randn(experts, inter, hidden, generator=g) / hidden ** 0.5).to(dev)
    w_down = (torch.randn(experts, hidden, inter, generator=g) / inter ** 0.5).to(dev)

    def run(x):
        probs = torch.softmax(x @ w_router.T, dim=-1)
        weights, ids = torch.topk(probs, top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for e in torch.unique(ids).tolist():
            token, slot = torch.where(ids == e)
            h = x[token]
            y = (torch.nn.functional.silu(h @ w_gate[e].T) * (h @ w_up[e].T)) @ w_down[e].T
            out.index_add_(0, token, y * weights[token, slot, None])
        return out

    return run, 3 * inter * hidden * 4  # bytes of one expert's weights


def main():
    c = ceilings()
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}: " + ', '.join(f'{k} {v:.1f}' for k, v in c.items()))
    print('shape (H/I, E, k)   tokens   ms      GFLOP/s  GB/s (weights read)  of f32 matmul  of copy')
    for hidden, inter, experts, top_k in [(256, 512, 8, 2), (1024, 2048, 8, 2), (4096, 14336, 8, 2)]:
        run, expert_bytes = moe_layer(hidden, inter, experts, top_k)
        for tokens in [1, 8, 64, 256, 4096]:
            x = torch.randn(tokens, hidden, device=dev)
            ms = timed(lambda: run(x))
            flops = 2 * tokens * top_k * 3 * hidden * inter
            read = min(experts, tokens * top_k) * expert_bytes
            gflops, gbs = flops / ms / 1e6, read / ms / 1e6
            print(f'{hidden}/{inter}, {experts}, {top_k}'.ljust(20) + f'{tokens:>6}  {ms:8.3f}  {gflops:9.1f}  {gbs:10.1f}'
                  f'           {gflops / 1e3 / c["f32 matmul TFLOP/s"]:6.1%}        {gbs / c["copy GB/s"]:6.1%}')


if __name__ == '__main__':
    main()
