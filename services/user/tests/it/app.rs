//! `TestApp`: one user service on the shared `ServiceHarness` (its own
//! nats-server and database), with typed client calls as a given identity.

use stocklet_proto::stocklet::user::v1 as pb;
use stocklet_proto::stocklet::user::v1::user_service_client::UserServiceClient;
use stocklet_service_kit::Identity;
use stocklet_test_support::harness::LISTEN_ADDR;
pub use stocklet_test_support::harness::{admin, as_user, violated_fields};
use stocklet_user::{Config, run};
use tonic::{Request, Status};

pub fn registration(email: &str) -> pb::RegisterUserRequest {
    pb::RegisterUserRequest {
        first_name: "Ann".into(),
        last_name: "Lee".into(),
        email: email.into(),
        password: "correct horse".into(),
    }
}

stocklet_test_support::service_test_app! {
    /// The user service under test, on its harness.
    pub struct TestApp(UserServiceClient);
    info: pb::GetServiceInfoRequest {};
    start: |common, listener, shutdown| {
        let config = Config {
            common,
            listen_addr: LISTEN_ADDR.into(),
            hash_concurrency: 2,
        };
        run(config, listener, shutdown)
    };
}

impl TestApp {
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
