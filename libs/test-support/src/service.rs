//! A service under test, started exactly as its binary starts it.
//!
//! Every service exposes `run(config, listener, shutdown)`. A test binds a
//! port-0 listener, spawns `run` on it, and connects a gRPC channel once the
//! service accepts; stopping cancels the token and waits for a clean exit.
//! [`RunningService`] is that dance once, for every service's `TestApp`.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// A service's `run` task, with its shutdown token.
pub struct RunningService<E> {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), E>>,
}

impl<E: Debug + Send + 'static> RunningService<E> {
    /// Spawns `run` on a port-0 listener and returns it with a channel to
    /// it, once it accepts connections.
    ///
    /// # Panics
    /// If the service stops before it accepts.
    pub async fn start<F, Fut>(run: F) -> (Self, Channel)
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind a port for the service: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the listener has no address: {e}"));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(listener, shutdown.clone()));
        let endpoint = Channel::from_shared(format!("http://{addr}"))
            .unwrap_or_else(|e| panic!("bad endpoint {addr}: {e}"));
        let channel = loop {
            match endpoint.connect().await {
                Ok(channel) => break channel,
                Err(_) if !task.is_finished() => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(error) => {
                    let outcome = task.await;
                    panic!("the service stopped before it accepted ({error}): {outcome:?}");
                }
            }
        };
        (Self { shutdown, task }, channel)
    }

    /// Ends the service at once, as `kill -9` would: nothing it holds is
    /// acked or released, its connections close, and its in-flight work is
    /// dropped wherever it was.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Stops the service gracefully and waits for it.
    ///
    /// # Panics
    /// If it panicked or stopped with an error.
    pub async fn stop(self) {
        self.shutdown.cancel();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("the service did not stop cleanly: {error:?}"),
            Err(error) => panic!("the service task failed: {error}"),
        }
    }
}
