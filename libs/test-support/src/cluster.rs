//! A private 3-node (or n-node) nats-server cluster per test.
//!
//! `compose.cluster.yaml` runs Stocklet on three NATS nodes with R3
//! streams and several instances per durable consumer. That deployment has
//! to be provable without Docker, so this fixture runs the same topology on
//! loopback: each node is a [`NatsServer`] (the project's
//! `nats/nats-server.conf`, so `sync_interval: always`, its own store dir,
//! an ephemeral client port) plus a `cluster { }` block routing it to the
//! others. Tests can kill and restart single nodes to exercise failover.

use crate::nats::{NatsServer, NatsServerOptions};

/// The cluster name every node is started with.
const CLUSTER_NAME: &str = "stocklet-test";

/// `size` nats-servers clustered over loopback routes, with JetStream.
///
/// Dropping it kills every node and deletes their stores (each node is a
/// [`NatsServer`], with the same drop behaviour).
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes at once (a clustered JetStream only answers once a
    /// quorum of its nodes is up, so they cannot start one after the other)
    /// and waits until each one answers JetStream requests.
    ///
    /// Route ports are picked up front, below the ephemeral range (every
    /// node must know the others' routes before it starts, and a restarted
    /// node binds its route port again); monitoring ports are chosen by the
    /// servers themselves.
    ///
    /// # Panics
    /// If the binary is missing (run `make tools`), or the cluster does not
    /// become ready within the start timeout (the message includes the log).
    pub async fn start(size: usize) -> NatsCluster {
        assert!(size >= 1, "a cluster needs at least one node");
        let route_ports: Vec<u16> = (0..size).map(|_| crate::stable_port()).collect();
        let routes = route_ports
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(", ");
        let starts: Vec<_> = route_ports
            .iter()
            .enumerate()
            .map(|(index, port)| {
            let options = NatsServerOptions::new()
                .args(["-n", &node_name(index)])
                // Electing the JetStream meta leader takes a few seconds.
                .start_timeout(std::time::Duration::from_secs(60))
                .config(format!(
                    "cluster {{\n  name: {CLUSTER_NAME}\n  listen: \"127.0.0.1:{port}\"\n  routes: [{routes}]\n}}"
                ));
            tokio::spawn(NatsServer::start_with(options))
        })
            .collect();
        let mut nodes = Vec::with_capacity(size);
        for start in starts {
            match start.await {
                Ok(node) => nodes.push(node),
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => panic!("starting a cluster node failed: {error}"),
            }
        }
        NatsCluster { nodes }
    }

    /// Each node's client URL, `nats://127.0.0.1:<port>`. A client given one
    /// of them learns the others from the server and fails over to them.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// One node, to kill, pause, restart or read the log of.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn node(&mut self, index: usize) -> &mut NatsServer {
        &mut self.nodes[index]
    }

    /// Kills one node at once (SIGKILL), like a crash.
    pub fn kill_node(&mut self, index: usize) {
        self.node(index).kill();
    }

    /// Starts a stopped or killed node again on its port and store.
    pub async fn restart_node(&mut self, index: usize) {
        self.node(index).restart().await;
    }

    /// A new client connected to the cluster as the provisioner (any node,
    /// failing over).
    ///
    /// # Panics
    /// If connecting fails.
    pub async fn client(&self) -> async_nats::Client {
        crate::credentials::connect_as_provisioner(&self.urls()).await
    }

    /// Creates every stream (with three replicas, or one per node if
    /// fewer) and the snapshot bucket, as `stocklet provision` does.
    ///
    /// # Panics
    /// If provisioning fails.
    pub async fn provision(&self) {
        let client = self.client().await;
        stocklet_service_kit::provision::provision(&client, self.nodes.len().min(3))
            .await
            .unwrap_or_else(|e| panic!("cannot provision the streams on the cluster: {e}"));
    }

    /// A JetStream context on a new [`NatsCluster::client`].
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }
}

/// The server name of node `index`: `stocklet-node-<index>`.
fn node_name(index: usize) -> String {
    format!("stocklet-node-{index}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use async_nats::jetstream::stream;

    use super::*;

    /// Three nodes form one JetStream cluster: an R3 stream is placed on all
    /// of them and keeps taking writes with one node killed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_nodes_keep_an_r3_stream_writable_with_one_down() {
        let mut cluster = NatsCluster::start(3).await;
        assert_eq!(cluster.urls().len(), 3);
        let js = cluster.jetstream().await;
        let mut created = js
            .create_stream(stream::Config {
                name: "R3".into(),
                subjects: vec!["r3.>".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        let info = created.info().await.unwrap();
        let cluster_info = info.cluster.clone().expect("clustered stream info");
        assert_eq!(cluster_info.replicas.len() + 1, 3, "{cluster_info:?}");

        js.publish("r3.a", "one".into())
            .await
            .unwrap()
            .await
            .unwrap();
        cluster.kill_node(2);
        // Fail over (and possibly re-elect the stream leader) within a few tries.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let acked = match js.publish("r3.a", "two".into()).await {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            };
            if acked {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no write quorum with 2 of 3 nodes"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let state = js
            .get_stream("R3")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .clone();
        assert_eq!(state.messages, 2);

        cluster.restart_node(2).await;
        assert!(cluster.node(2).is_running());
    }
}
