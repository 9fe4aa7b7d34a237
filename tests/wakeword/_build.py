import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from tests.wakeword.corpus import Spec, ci_specs, full_specs
from tests.wakeword.evaluate import analyse


def job(spec: Spec):
    t = time.time()
    s = spec.build()
    a = analyse(s)
    return f"{spec}: {s.hours * 60:.1f} min, {len(s.clips)} clips, peak {a.scores.max():.2f}, {time.time() - t:.0f} s"


if __name__ == "__main__":
    specs = ci_specs() if sys.argv[1] == "ci" else full_specs()
    if len(sys.argv) > 2:
        specs = [s for s in specs if s.split == sys.argv[2]]
    with ProcessPoolExecutor(
        int(sys.argv[3]) if len(sys.argv) > 3 else 2,
        mp_context=multiprocessing.get_context("spawn"),
    ) as p:
        for line in p.map(job, specs):
            print(line, flush=True)
