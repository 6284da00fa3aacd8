//! A service's consumers, started together, kept alive, stopped together.
//!
//! Every service runs some projections (its read models) and some reactors
//! (its part of the saga) beside its gRPC server. They share one life:
//! started before the server takes calls, stopped only after it has drained
//! (so no in-flight command waits on a projection that is gone), and each
//! allowed to finish and ack what it holds. [`Consumers`] is that life in
//! one place, so a service's `run` only says which consumers it has.
//!
//! No consumer dies silently. A consumer loop that ends before shutdown
//! (with an error, or by panicking) is logged at error level, counted in
//! `stocklet_consumer_restarts_total{consumer}`, and started again after a
//! pause that grows with its failures in a row (1 s up to 30 s). While any
//! consumer is down, [`Consumers::health`] says so, and the service's gRPC
//! health answers NOT_SERVING (and the gateway's `/readyz` with it).

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use es_core::projection::{Projection, ProjectionRunner};
use es_core::reactor::{Reaction, Reactor};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::RunError;

/// A consumer that ran this long before failing starts its backoff anew.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// How many of a service's consumers are down (between a failure and their
/// restart): what its health reports.
pub type ConsumerHealth = watch::Receiver<usize>;

/// The running consumers of one service.
pub struct Consumers {
    stop: CancellationToken,
    running: JoinSet<()>,
    down: Arc<watch::Sender<usize>>,
}

impl Default for Consumers {
    fn default() -> Self {
        Self::new()
    }
}

impl Consumers {
    /// No consumers yet.
    pub fn new() -> Self {
        Self {
            stop: CancellationToken::new(),
            running: JoinSet::new(),
            down: Arc::new(watch::Sender::new(0)),
        }
    }

    /// How many consumers are down right now, and every change of it.
    pub fn health(&self) -> ConsumerHealth {
        self.down.subscribe()
    }

    /// Creates the projection's checkpoint and durable consumer, then runs
    /// it until [`stop`](Self::stop). The runner is shared so that the API
    /// can wait for it to reach a position (read-your-writes).
    pub async fn projection<P: Projection>(
        &mut self,
        runner: Arc<ProjectionRunner<P>>,
    ) -> Result<(), RunError> {
        runner
            .ensure_consumer()
            .await
            .map_err(|e| RunError::Consumer(e.to_string()))?;
        let name = runner.projection().name().to_owned();
        self.spawn(name, move |stop| {
            let runner = Arc::clone(&runner);
            async move { runner.run(stop).await }
        });
        Ok(())
    }

    /// Creates the reactor's durable consumer (so a failure stops the
    /// service's start, not some later moment) and runs it until
    /// [`stop`](Self::stop).
    pub async fn reactor<R: Reaction>(&mut self, reactor: Reactor<R>) -> Result<(), RunError> {
        reactor
            .ensure_consumer()
            .await
            .map_err(|e| RunError::Consumer(e.to_string()))?;
        let name = reactor.durable_name().to_owned();
        let reactor = Arc::new(reactor);
        self.spawn(name, move |stop| {
            let reactor = Arc::clone(&reactor);
            async move { reactor.run(stop).await }
        });
        Ok(())
    }

    /// Runs the consumer loop that `run` starts (and starts again whenever
    /// it ends before [`stop`](Self::stop)); the loop must return once its
    /// token is cancelled. `name` labels its logs and metrics.
    pub fn spawn<F, Fut, E>(&mut self, name: impl Into<String>, run: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let name = name.into();
        let stop = self.stop.clone();
        let down = Arc::clone(&self.down);
        self.running.spawn(async move {
            let mut failures = 0u32;
            loop {
                let started = Instant::now();
                // Its own task, so that a panic ends only this run; aborted
                // with the supervisor (a service dropped without a stop).
                let ran = AbortOnDrop(tokio::spawn(run(stop.clone()))).join().await;
                let reason = match ran {
                    Ok(Ok(())) if stop.is_cancelled() => return,
                    Ok(Ok(())) => "ended before shutdown".to_owned(),
                    Ok(Err(error)) => error.to_string(),
                    Err(error) => format!("panicked: {error}"),
                };
                if started.elapsed() >= HEALTHY_RUN {
                    failures = 0;
                }
                failures = failures.saturating_add(1);
                let delay = restart_delay(failures);
                tracing::error!(consumer = %name, %reason, failures, ?delay, "consumer stopped; restarting it");
                metrics::counter!("stocklet_consumer_restarts_total", "consumer" => name.clone())
                    .increment(1);
                down.send_modify(|down| *down += 1);
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(delay) => {}
                }
                down.send_modify(|down| *down = down.saturating_sub(1));
                if stop.is_cancelled() {
                    return;
                }
            }
        });
    }

    /// Asks every consumer to stop and waits until all have finished what
    /// they hold.
    pub async fn stop(mut self) -> Result<(), RunError> {
        self.stop.cancel();
        while let Some(joined) = self.running.join_next().await {
            joined.map_err(|e| RunError::Consumer(e.to_string()))?;
        }
        Ok(())
    }
}

/// A task that ends with its handle.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The pause before the `failures`-th restart in a row: 1 s, doubling, at
/// most 30 s.
fn restart_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_up_to_half_a_minute() {
        let delays: Vec<u64> = (1..=8).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[tokio::test]
    async fn a_consumer_that_fails_is_restarted_and_reported_down_meanwhile() {
        let mut consumers = Consumers::new();
        let mut health = consumers.health();
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = Arc::clone(&runs);
        consumers.spawn("flaky", move |stop| {
            let run = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                match run {
                    0 => Err("the database went away".to_owned()),
                    1 => {
                        // Long enough for the test to see it up in between.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        panic!("a bug")
                    }
                    _ => {
                        stop.cancelled().await;
                        Ok(())
                    }
                }
            }
        });
        health.wait_for(|down| *down == 1).await.unwrap();
        health.wait_for(|down| *down == 0).await.unwrap();
        health.wait_for(|down| *down == 1).await.unwrap();
        health.wait_for(|down| *down == 0).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(std::sync::atomic::Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "never restarted a third time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        consumers.stop().await.unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(*health.borrow(), 0);
    }
}
