//! Running measured work and summarising it: operations per second over
//! concurrent tasks, percentiles of latencies.

use std::time::Instant;

use anyhow::Context;

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// User plus system CPU seconds from a `/proc/.../stat` file.
pub fn cpu_seconds(stat: &str) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(stat).with_context(|| format!("reading {stat}"))?;
    let after_name = &text[text.rfind(')').context("no command name")? + 1..];
    // After the name: state is field 3; utime and stime are 14 and 15.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("short stat line")?
            .parse()
            .context("bad stat field")
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / CLOCK_TICKS)
}

/// The `q` quantile (0..=1) of `samples`, sorting them; 0 when empty.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

/// Runs `op(ctx, i)` for every i in 0..total, spread over `workers`
/// concurrent tasks (worker w takes w, w+workers, ...); returns operations
/// per second.
pub async fn spread<C, F, Fut>(ctx: &C, workers: usize, total: usize, op: F) -> anyhow::Result<f64>
where
    C: Clone + Send + 'static,
    F: Fn(C, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let workers = workers.max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (ctx, op) = (ctx.clone(), op.clone());
            tokio::spawn(async move {
                let mut i = w;
                while i < total {
                    op(ctx.clone(), i).await?;
                    i += workers;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
