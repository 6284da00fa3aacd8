//! Serving a service over gRPC, the same way in every binary and test.
//!
//! Every service gets standard gRPC health (`grpc.health.v1`, reporting
//! SERVING while it runs and NOT_SERVING once shutdown starts) and
//! reflection (`grpc.reflection.v1`, from the shared descriptor set, so
//! `grpcurl` works without the .proto files). The listener comes from the
//! caller: binaries bind the configured address, tests bind port 0.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not be built from the descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `routes` plus health and reflection on `listener` until
/// `shutdown`, then stops taking new calls and lets in-flight ones finish.
/// `service_names` are the full names the health service reports on.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&str],
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in service_names {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(stocklet_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let routes = routes.add_service(health).add_service(reflection);
    let names: Vec<String> = service_names.iter().map(|n| (*n).to_owned()).collect();
    let stopping = async move {
        shutdown.cancelled().await;
        for name in &names {
            reporter
                .set_service_status(name.as_str(), ServingStatus::NotServing)
                .await;
        }
    };
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), stopping)
        .await?;
    Ok(())
}
