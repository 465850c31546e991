import sys, asyncio, time, cProfile, pstats
sys.path.insert(0, ".")
from tsray.engine import transformers_backend as tb
from tsray.engine import SamplingParams
prof = cProfile.Profile()
orig = tb.TransformersBackend._run
def run(self):
    prof.enable()
    try: orig(self)
    finally: prof.disable()
tb.TransformersBackend._run = run
async def main():
    b = tb.TransformersBackend(); await b.start("/tmp/tsray-tiny-model", {}, num_gpus=1)
    async def c(i, n): return [d async for d in b.generate(f"r{i}", f"p {i} " * (i % 30 + 1), SamplingParams(max_tokens=n, ignore_eos=True, seed=i))]
    await asyncio.gather(*(c(i, 16) for i in range(64)))
    t = time.time(); await asyncio.gather(*(c(1000 + i, 128) for i in range(256))); print("256x128", time.time() - t)
    await b.shutdown()
asyncio.run(main())
pstats.Stats(prof).sort_stats("tottime").print_stats(25)
