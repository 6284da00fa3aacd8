//! The user service's gRPC API.
//!
//! Every command that touches an email address changes two or three
//! aggregates (the user and the claims of the old and new address). They
//! are decided on freshly loaded states and appended as ONE atomic batch,
//! each commit checked against the sequence its decision was based on. So a
//! crash at any instant leaves either all of a change or none of it, and of
//! two concurrent claims of one address exactly one is stored; the loser
//! decides again on the new state and finds the address taken. Commands
//! then wait (bounded) for the directory projection to reach their position,
//! so a query right after a command sees it. Every failure becomes an
//! [`ApiError`] and, through it, a gRPC status in one place.

use std::sync::Arc;

use es_core::projection::ProjectionRunner;
use es_core::repository::Loaded;
use es_core::store::Commit;
use es_core::{
    Aggregate, AggregateId, AtomicDecision, CommandContext, ExecuteError, JetStreamEventStore,
    Repository, RetryPolicy, StreamRef,
};
use sqlx::PgPool;
use stocklet_proto::stocklet::user::v1::{self as pb, user_service_server::UserService};
use stocklet_service_kit::password::Hasher;
use stocklet_service_kit::registration;
use stocklet_service_kit::service::READ_YOUR_WRITES_WAIT;
use stocklet_service_kit::{ApiError, CommandApi, PageRequest, Validation};
use stocklet_values::normalise_email;
use tonic::{Request, Response, Status};

use crate::domain::{
    CustomerId, Email, EmailClaim, EmailClaimCommand, EmailClaimError, Password, PersonName, User,
    UserCommand, UserError, claim_id,
};
use crate::projections::{Directory, UserRow};

/// Attempts at an atomic change whose aggregates keep changing under it.
const MAX_ATTEMPTS: u32 = 10;

/// Handles `stocklet.user.v1.UserService`.
#[derive(Clone)]
pub struct UserApi {
    core: CommandApi<User, Directory>,
    claims: Repository<EmailClaim, JetStreamEventStore>,
    hasher: Hasher,
    /// The private AUTH stream, where a new user's password hash is handed
    /// to the auth service ([`registration`]).
    auth_stream: StreamRef,
}

/// One decided change: the commits to append together, and the user after.
struct Change {
    commits: Vec<Commit>,
    user: User,
    /// The newest version among the states decided on: what queries must
    /// have seen when there is nothing to append.
    seen: u64,
}

impl UserApi {
    /// The API over its repositories and read model.
    pub fn new(
        users: Repository<User, JetStreamEventStore>,
        claims: Repository<EmailClaim, JetStreamEventStore>,
        directory: Arc<ProjectionRunner<Directory>>,
        pool: PgPool,
        hasher: Hasher,
        auth_stream: StreamRef,
    ) -> Self {
        let users = users.with_retry_policy(RetryPolicy::default().with_max_attempts(MAX_ATTEMPTS));
        Self {
            core: CommandApi::new(users, directory, pool),
            claims,
            hasher,
            auth_stream,
        }
    }

    /// Decides a change on fresh states and appends it atomically, deciding
    /// again when another writer got there first (or the append is in
    /// doubt: if it landed, every aggregate decides "nothing to do" and the
    /// change is reported done). Waits until the directory shows the result.
    async fn change<F, Fut>(&self, mut decide: F) -> Result<User, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Change, ApiError>>,
    {
        let executed = self
            .core
            .repository()
            .execute_atomic(|| {
                let decided = decide();
                async move {
                    let Change {
                        commits,
                        user,
                        seen,
                    } = decided.await.map_err(ExecuteError::Rejected)?;
                    Ok(if commits.is_empty() {
                        AtomicDecision::Done((user, seen))
                    } else {
                        AtomicDecision::Commit {
                            commits,
                            outcome: (user, seen),
                        }
                    })
                }
            })
            .await
            .map_err(|e| ApiError::from_execute(e, |e| e))?;
        let (user, seen) = executed.outcome;
        let position = executed.positions.into_iter().max().unwrap_or(seen);
        if !self
            .core
            .read_model()
            .wait_for(position, READ_YOUR_WRITES_WAIT)
            .await
        {
            tracing::warn!(
                position,
                "directory is lagging; answering before it caught up"
            );
        }
        Ok(user)
    }

    /// Loads a user that must exist and not be deleted.
    async fn live_user(&self, id: &AggregateId) -> Result<Loaded<User>, ApiError> {
        let loaded = self.core.repository().load(id).await?;
        if loaded.state.is_live() {
            Ok(loaded)
        } else {
            Err(ApiError::NotFound("user".into()))
        }
    }

    async fn load_claim(&self, normalised: &str) -> Result<Loaded<EmailClaim>, ApiError> {
        let id = AggregateId::parse(claim_id(normalised))
            .map_err(|e| ApiError::Internal(format!("claim id: {e}")))?;
        Ok(self.claims.load(&id).await?)
    }

    fn user_commit(
        &self,
        loaded: &Loaded<User>,
        command: &UserCommand,
        context: &CommandContext,
    ) -> Result<(Option<Commit>, User), ApiError> {
        let events = loaded.state.decide(command).map_err(user_rejected)?;
        let mut state = loaded.state.clone();
        for event in &events {
            state.apply(event);
        }
        let commit = (!events.is_empty()).then(|| {
            self.core
                .repository()
                .commit(&loaded.id, loaded.version, &events, context)
        });
        Ok((commit, state))
    }

    fn claim_commit(
        &self,
        loaded: &Loaded<EmailClaim>,
        command: &EmailClaimCommand,
        context: &CommandContext,
    ) -> Result<Option<Commit>, ApiError> {
        let events = loaded.state.decide(command).map_err(claim_rejected)?;
        Ok((!events.is_empty()).then(|| {
            self.claims
                .commit(&loaded.id, loaded.version, &events, context)
        }))
    }
}

/// How the user's business rules surface to clients.
fn user_rejected(error: UserError) -> ApiError {
    match error {
        UserError::AlreadyExists => ApiError::AlreadyExists("user".into()),
        UserError::NotFound | UserError::Deleted => ApiError::NotFound("user".into()),
    }
}

fn claim_rejected(error: EmailClaimError) -> ApiError {
    match error {
        EmailClaimError::Taken => ApiError::AlreadyExists("email address".into()),
    }
}

fn user_id(validation: &mut Validation, raw: &str) -> Option<AggregateId> {
    validation.parse("id", AggregateId::parse(raw))
}

fn missing() -> Status {
    ApiError::Internal("validated fields missing".into()).into()
}

fn to_pb(user: &User) -> pb::User {
    pb::User {
        id: user.id_str().to_owned(),
        email: user.email_str().to_owned(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        created_at_ms: user.created_at_ms,
        updated_at_ms: user.updated_at_ms,
    }
}

fn row_to_pb(row: UserRow) -> pb::User {
    pb::User {
        id: row.id,
        email: row.email,
        first_name: row.first_name,
        last_name: row.last_name,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn get_service_info(
        &self,
        _request: Request<pb::GetServiceInfoRequest>,
    ) -> Result<Response<pb::GetServiceInfoResponse>, Status> {
        Ok(Response::new(pb::GetServiceInfoResponse {
            name: "user".into(),
            source: "https://github.com/stocklet/stocklet/tree/main/services/user".into(),
            license: "MIT".into(),
        }))
    }

    async fn view_user(
        &self,
        request: Request<pb::ViewUserRequest>,
    ) -> Result<Response<pb::ViewUserResponse>, Status> {
        let identity = self.core.identity(&request);
        identity.require_user()?;
        let mut validation = Validation::new();
        let id = user_id(&mut validation, &request.get_ref().id);
        validation.finish()?;
        let id = id.ok_or_else(missing)?;
        identity.require_owner_or_admin(id.as_str(), "user")?;
        let row = UserRow::find(self.core.pool(), id.as_str())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("user".into()))?;
        Ok(Response::new(pb::ViewUserResponse {
            user: Some(row_to_pb(row)),
        }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        self.core.identity(&request).require_admin()?;
        let page = PageRequest::parse(request.get_ref().page_size, &request.get_ref().page_token)?;
        let rows = UserRow::page(self.core.pool(), page.after.as_deref(), page.fetch_limit())
            .await
            .map_err(ApiError::from)?;
        let (rows, next_page_token) = page.finish(rows, |row| row.id.clone());
        Ok(Response::new(pb::ListUsersResponse {
            users: rows.into_iter().map(row_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn register_user(
        &self,
        request: Request<pb::RegisterUserRequest>,
    ) -> Result<Response<pb::RegisterUserResponse>, Status> {
        let context = self.core.context(&request);
        let body = request.into_inner();
        let mut validation = Validation::new();
        let first_name = validation.parse("first_name", PersonName::parse(&body.first_name));
        let last_name = validation.parse("last_name", PersonName::parse(&body.last_name));
        let email = validation.parse("email", Email::parse(&body.email));
        let password = validation.parse("password", Password::parse(&body.password));
        validation.finish()?;
        let (Some(first_name), Some(last_name), Some(email), Some(password)) =
            (first_name, last_name, email, password)
        else {
            return Err(missing());
        };
        // Fail fast, before the costly hash, when the address is taken. The
        // atomic append below is what really decides.
        if self
            .load_claim(&email.normalised())
            .await?
            .state
            .holder
            .is_some()
        {
            return Err(claim_rejected(EmailClaimError::Taken).into());
        }
        let password_hash = self
            .hasher
            .hash(password)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let user_id = CustomerId::generate();
        let id = AggregateId::parse(user_id.as_str())
            .map_err(|e| ApiError::Internal(format!("generated user id: {e}")))?;
        // The hash first, on the private stream: once UserRegistered is
        // stored, the auth service finds its hash.
        let at_ms = es_core::envelope::now_ms();
        registration::hand_over(
            self.core.repository().store(),
            &self.auth_stream,
            user_id.as_str(),
            &password_hash,
            &context,
            at_ms,
        )
        .await
        .map_err(ApiError::from)?;
        let register = UserCommand::Register {
            id: user_id,
            email: email.clone(),
            first_name,
            last_name,
            at_ms,
        };
        let claim = EmailClaimCommand::Claim {
            email: email.clone(),
            user_id: id.to_string(),
            at_ms: es_core::envelope::now_ms(),
        };
        let user = self
            .change(|| async {
                let claim_state = self.load_claim(&email.normalised()).await?;
                let user_state = self.core.repository().load(&id).await?;
                let claimed = self.claim_commit(&claim_state, &claim, &context)?;
                let (registered, user) = self.user_commit(&user_state, &register, &context)?;
                Ok(Change {
                    commits: claimed.into_iter().chain(registered).collect(),
                    user,
                    seen: claim_state.version.max(user_state.version),
                })
            })
            .await?;
        Ok(Response::new(pb::RegisterUserResponse {
            user: Some(to_pb(&user)),
        }))
    }

    async fn update_user_email(
        &self,
        request: Request<pb::UpdateUserEmailRequest>,
    ) -> Result<Response<pb::UpdateUserEmailResponse>, Status> {
        let identity = self.core.identity(&request);
        identity.require_user()?;
        let body = request.get_ref();
        let mut validation = Validation::new();
        let id = user_id(&mut validation, &body.id);
        let email = validation.parse("email", Email::parse(&body.email));
        validation.finish()?;
        let (Some(id), Some(email)) = (id, email) else {
            return Err(missing());
        };
        identity.require_owner_or_admin(id.as_str(), "user")?;
        let context = self.core.context(&request);
        let user = self
            .change(|| async {
                let user_state = self.live_user(&id).await?;
                let at_ms = es_core::envelope::now_ms();
                let previous = normalise_email(user_state.state.email_str());
                let (updated, user) = self.user_commit(
                    &user_state,
                    &UserCommand::ChangeEmail {
                        email: email.clone(),
                        at_ms,
                    },
                    &context,
                )?;
                let mut commits = Vec::new();
                let mut seen = user_state.version;
                if previous != email.normalised() {
                    let new_claim = self.load_claim(&email.normalised()).await?;
                    let old_claim = self.load_claim(&previous).await?;
                    seen = seen.max(new_claim.version).max(old_claim.version);
                    commits.extend(self.claim_commit(
                        &new_claim,
                        &EmailClaimCommand::Claim {
                            email: email.clone(),
                            user_id: id.to_string(),
                            at_ms,
                        },
                        &context,
                    )?);
                    commits.extend(self.claim_commit(
                        &old_claim,
                        &EmailClaimCommand::Release {
                            user_id: id.to_string(),
                            at_ms,
                        },
                        &context,
                    )?);
                }
                commits.extend(updated);
                Ok(Change {
                    commits,
                    user,
                    seen,
                })
            })
            .await?;
        Ok(Response::new(pb::UpdateUserEmailResponse {
            user: Some(to_pb(&user)),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let identity = self.core.identity(&request);
        identity.require_user()?;
        let mut validation = Validation::new();
        let id = user_id(&mut validation, &request.get_ref().id);
        validation.finish()?;
        let id = id.ok_or_else(missing)?;
        identity.require_owner_or_admin(id.as_str(), "user")?;
        let context = self.core.context(&request);
        self.change(|| async {
            let user_state = self.live_user(&id).await?;
            let at_ms = es_core::envelope::now_ms();
            let claim = self
                .load_claim(&normalise_email(user_state.state.email_str()))
                .await?;
            let (deleted, user) =
                self.user_commit(&user_state, &UserCommand::Delete { at_ms }, &context)?;
            let released = self.claim_commit(
                &claim,
                &EmailClaimCommand::Release {
                    user_id: id.to_string(),
                    at_ms,
                },
                &context,
            )?;
            Ok(Change {
                commits: released.into_iter().chain(deleted).collect(),
                user,
                seen: user_state.version.max(claim.version),
            })
        })
        .await?;
        Ok(Response::new(pb::DeleteUserResponse {}))
    }
}
