//! Work over many nodes split across threads (rayon), but only when
//! there is enough of it: handing a few hundred cheap checks to another
//! thread costs more than it saves, and the scheduler shares its cores
//! with the API server.

use std::ops::Range;

use rayon::prelude::*;

/// Items below which a map runs on the calling thread. Measured with
/// `skiff bench scheduler` on 2 cores shared with the API server: at
/// 5,000 nodes (500 evaluated per pod) splitting cost 15% of throughput
/// for basic pods and 5% for spread and anti-affinity ones (see
/// BENCHMARKS.md), so only big batches (`percentageOfNodesToScore: 100`
/// on large clusters, preemption's dry runs) are split.
pub const PARALLEL_MIN: usize = 1024;

/// `f` over `range`, in parallel when the range is long enough.
pub fn map_range<T, F>(range: Range<usize>, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize) -> T + Sync + Send,
{
    if range.len() >= PARALLEL_MIN {
        range.into_par_iter().with_min_len(32).map(f).collect()
    } else {
        range.map(f).collect()
    }
}
