//! `TestApp`: one user service on a port-0 listener, its own nats-server
//! and its own database, with typed client calls as a given identity.

use stocklet_proto::stocklet::user::v1 as pb;
use stocklet_proto::stocklet::user::v1::user_service_client::UserServiceClient;
use stocklet_service_kit::config::CommonConfig;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::{Identity, Secret};
use stocklet_test_support::{NatsServer, RunningService, TestDb};
use stocklet_user::{Config, run};
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const INTERNAL_TOKEN: &str = "test-internal-token";

pub struct TestApp {
    pub nats: NatsServer,
    pub db: TestDb,
    pub client: UserServiceClient<Channel>,
    service: RunningService<RunError>,
}

pub fn admin() -> Identity {
    Identity::admin("admin-1")
}

/// A request carrying `identity` the way the gateway sends it.
pub fn as_user<T>(identity: &Identity, message: T) -> Request<T> {
    let mut request = Request::new(message);
    identity.write_metadata(request.metadata_mut(), &Secret::new(INTERNAL_TOKEN));
    request
}

pub fn registration(email: &str) -> pb::RegisterUserRequest {
    pb::RegisterUserRequest {
        first_name: "Ann".into(),
        last_name: "Lee".into(),
        email: email.into(),
        password: "correct horse".into(),
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let nats = NatsServer::start().await;
        let db = TestDb::create().await;
        Self::spawn_on(nats, db).await
    }

    /// Starts the service on existing infrastructure (for restarts).
    pub async fn spawn_on(nats: NatsServer, db: TestDb) -> TestApp {
        let config = Config {
            common: CommonConfig {
                nats_url: nats.url(),
                database_url: Secret::new(db.url.clone()),
                internal_token: Secret::new(INTERNAL_TOKEN),
                stream_replicas: 1,
                db_pool_size: stocklet_service_kit::config::DEFAULT_DB_POOL_SIZE,
            },
            listen_addr: "127.0.0.1:0".into(),
            hash_concurrency: 2,
        };
        let (service, channel) =
            RunningService::start(|listener, shutdown| run(config, listener, shutdown)).await;
        TestApp {
            nats,
            db,
            client: UserServiceClient::new(channel),
            service,
        }
    }

    /// Stops the service gracefully and hands back its infrastructure.
    pub async fn stop(self) -> (NatsServer, TestDb) {
        self.service.stop().await;
        (self.nats, self.db)
    }

    pub async fn register(&self, email: &str) -> Result<pb::User, Status> {
        let response = self
            .client
            .clone()
            .register_user(Request::new(registration(email)))
            .await?;
        Ok(response.into_inner().user.unwrap())
    }

    pub async fn view(&self, identity: &Identity, id: &str) -> Result<pb::User, Status> {
        let request = as_user(identity, pb::ViewUserRequest { id: id.into() });
        Ok(self
            .client
            .clone()
            .view_user(request)
            .await?
            .into_inner()
            .user
            .unwrap())
    }

    pub async fn list(
        &self,
        identity: &Identity,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListUsersResponse, Status> {
        let request = as_user(
            identity,
            pb::ListUsersRequest {
                page_size,
                page_token: page_token.into(),
            },
        );
        Ok(self.client.clone().list_users(request).await?.into_inner())
    }

    pub async fn update_email(
        &self,
        identity: &Identity,
        id: &str,
        email: &str,
    ) -> Result<pb::User, Status> {
        let request = as_user(
            identity,
            pb::UpdateUserEmailRequest {
                id: id.into(),
                email: email.into(),
            },
        );
        Ok(self
            .client
            .clone()
            .update_user_email(request)
            .await?
            .into_inner()
            .user
            .unwrap())
    }

    pub async fn delete(&self, identity: &Identity, id: &str) -> Result<(), Status> {
        let request = as_user(identity, pb::DeleteUserRequest { id: id.into() });
        self.client.clone().delete_user(request).await?;
        Ok(())
    }
}

/// The fields named in a status's BadRequest details.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|details| {
            details
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect()
        })
        .unwrap_or_default()
}
