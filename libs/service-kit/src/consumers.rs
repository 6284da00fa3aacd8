//! A service's consumers, started together and stopped together.
//!
//! Every service runs some projections (its read models) and some reactors
//! (its part of the saga) beside its gRPC server. They share one life:
//! started before the server takes calls, stopped only after it has drained
//! (so no in-flight command waits on a projection that is gone), and each
//! allowed to finish and ack what it holds. [`Consumers`] is that life in
//! one place, so a service's `run` only says which consumers it has.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use es_core::projection::{Projection, ProjectionRunner};
use es_core::reactor::{Reaction, Reactor};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::RunError;

/// The running consumers of one service.
pub struct Consumers {
    stop: CancellationToken,
    running: JoinSet<Result<(), String>>,
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
        }
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
        self.spawn(move |stop| async move { runner.run(stop).await });
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
        self.spawn(move |stop| async move { reactor.run(stop).await });
        Ok(())
    }

    /// Runs any consumer loop that stops when its token is cancelled.
    pub fn spawn<F, Fut, E>(&mut self, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        let running = run(self.stop.clone());
        self.running
            .spawn(async move { running.await.map_err(|e| e.to_string()) });
    }

    /// Asks every consumer to stop, waits until all have finished what they
    /// hold, and reports the first failure (all are waited for regardless).
    pub async fn stop(mut self) -> Result<(), RunError> {
        self.stop.cancel();
        let mut outcome = Ok(());
        while let Some(joined) = self.running.join_next().await {
            let result = joined
                .map_err(|e| RunError::Consumer(e.to_string()))
                .and_then(|ran| ran.map_err(RunError::Consumer));
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    }
}
