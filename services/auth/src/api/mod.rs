//! The auth service's gRPC API: the JWKS and logins for everyone, password
//! changes for the user themselves or an admin.
//!
//! A login finds the user id (directly, or by email through the logins read
//! model), then checks the password against the credentials aggregate
//! loaded from the event store, so a password change counts at once. Wrong
//! passwords and unknown users get the same answer after the same work.
//! SetPassword appends through the repository and waits (bounded) for the
//! logins projection, like every command. Every failure becomes an
//! [`ApiError`] and, through it, a gRPC status in one place.

use std::sync::Arc;
use std::time::Instant;

use es_core::projection::ProjectionRunner;
use es_core::{AggregateId, JetStreamEventStore, Repository};
use sqlx::PgPool;
use stocklet_proto::stocklet::auth::v1::{
    self as pb, auth_service_server::AuthService, login_password_request::Login,
};
use stocklet_service_kit::password::Passwords;
use stocklet_service_kit::ratelimit::RateLimiter;
use stocklet_service_kit::{ApiError, CommandApi, Validation};
use stocklet_values::normalise_email;
use tonic::{Request, Response, Status};

use crate::domain::{
    Credentials, CredentialsCommand, CredentialsError, Password, PasswordAttempt, Role,
};
use crate::projections::{LoginRow, Logins};
use crate::tokens::TokenSigner;

/// Handles `stocklet.auth.v1.AuthService`.
#[derive(Clone)]
pub struct AuthApi {
    core: CommandApi<Credentials, Logins>,
    passwords: Passwords,
    signer: TokenSigner,
    /// Failed password checks per account: logins and own password
    /// changes, whoever sends them and from wherever (the gateway limits
    /// per client too, but a client may call this port directly).
    guesses: Arc<RateLimiter>,
}

impl AuthApi {
    /// The API over its repository, read model, hasher and signer.
    pub fn new(
        credentials: Repository<Credentials, JetStreamEventStore>,
        logins: Arc<ProjectionRunner<Logins>>,
        pool: PgPool,
        passwords: Passwords,
        signer: TokenSigner,
        guesses: RateLimiter,
    ) -> Self {
        Self {
            core: CommandApi::new(credentials, logins, pool),
            passwords,
            signer,
            guesses: Arc::new(guesses),
        }
    }

    /// Spends one guess on each account in `keys`, or refuses when one has
    /// none left (spending nothing more).
    fn spend_guesses(&self, keys: &[String]) -> Result<(), ApiError> {
        let now = Instant::now();
        for (spent, key) in keys.iter().enumerate() {
            if let Err(wait) = self.guesses.check(key, now) {
                self.refund_guesses(&keys[..spent]);
                tracing::info!(account = %key, "password check refused: too many failures");
                return Err(ApiError::RateLimited(wait));
            }
        }
        Ok(())
    }

    /// Gives the guesses back: the password was right.
    fn refund_guesses(&self, keys: &[String]) {
        let now = Instant::now();
        for key in keys {
            self.guesses.refund(key, now);
        }
    }

    /// The live credentials of `id`, if any.
    async fn live(&self, id: &AggregateId) -> Result<Option<Credentials>, ApiError> {
        let loaded = self.core.repository().load(id).await?;
        Ok(loaded.state.is_live().then_some(loaded.state))
    }

    async fn verify(
        &self,
        password: &PasswordAttempt,
        credentials: &Credentials,
    ) -> Result<bool, ApiError> {
        self.passwords
            .verify(password, &credentials.password_hash)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// The credentials `login` names whose password is `password`.
    async fn authenticate(
        &self,
        login: &Login,
        password: &PasswordAttempt,
    ) -> Result<Credentials, ApiError> {
        let candidates = match login {
            Login::UserId(user_id) => vec![user_id.clone()],
            Login::Email(email) => LoginRow::by_email(self.core.pool(), email)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .map(|row| row.user_id)
                .collect(),
        };
        // The accounts the attempt is a guess against: every one the name
        // may mean (an email and an id of one account share one budget),
        // or the name itself when it means none.
        let mut keys: Vec<String> = candidates.iter().map(|id| format!("id:{id}")).collect();
        if let (true, Login::Email(email)) = (keys.is_empty(), login) {
            keys.push(format!("email:{}", normalise_email(email)));
        }
        self.spend_guesses(&keys)?;
        let mut verified = false;
        for candidate in candidates {
            let Ok(id) = AggregateId::parse(candidate) else {
                continue;
            };
            if let Some(credentials) = self.live(&id).await? {
                verified = true;
                if self.verify(password, &credentials).await? {
                    self.refund_guesses(&keys);
                    return Ok(credentials);
                }
            }
        }
        if !verified {
            // Unknown users cost as much as wrong passwords.
            self.passwords
                .verify_nobody(password)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        Err(ApiError::Unauthenticated)
    }
}

fn rejected(error: CredentialsError) -> ApiError {
    match error {
        CredentialsError::AlreadyExists => ApiError::AlreadyExists("credentials".into()),
        CredentialsError::NotFound | CredentialsError::Removed => {
            ApiError::NotFound("credentials".into())
        }
    }
}

fn now_s() -> i64 {
    es_core::envelope::now_ms() / 1000
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn get_service_info(
        &self,
        _request: Request<pb::GetServiceInfoRequest>,
    ) -> Result<Response<pb::GetServiceInfoResponse>, Status> {
        Ok(Response::new(pb::GetServiceInfoResponse {
            name: "auth".into(),
            source: "https://github.com/stocklet/stocklet/tree/main/services/auth".into(),
            license: "MIT".into(),
        }))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(pb::GetJwksResponse {
            keys: vec![self.signer.jwk().clone()],
        }))
    }

    async fn login_password(
        &self,
        request: Request<pb::LoginPasswordRequest>,
    ) -> Result<Response<pb::LoginPasswordResponse>, Status> {
        let body = request.get_ref();
        let mut validation = Validation::new();
        let login = match &body.login {
            None => {
                validation.check(false, "user_id", "give user_id or email");
                None
            }
            Some(Login::UserId(raw)) => validation
                .parse("user_id", AggregateId::parse(raw.as_str()))
                .map(|id| Login::UserId(id.to_string())),
            Some(Login::Email(raw)) => {
                validation.check(
                    !raw.trim().is_empty() && raw.len() <= 254,
                    "email",
                    "must be an email address",
                );
                Some(Login::Email(raw.clone()))
            }
        };
        // Only bounded: an account made under an older policy still logs
        // in, and a guesser learns nothing about the policy here.
        let password = validation.parse("password", PasswordAttempt::parse(&body.password));
        validation.finish()?;
        let (Some(login), Some(password)) = (login, password) else {
            return Err(ApiError::Internal("validated fields missing".into()).into());
        };
        let credentials = self.authenticate(&login, &password).await?;
        let role = credentials.role.unwrap_or(Role::Customer);
        let token = self.signer.issue(&credentials.user_id, role, now_s());
        tracing::info!(user_id = %credentials.user_id, role = role.as_str(), "logged in");
        Ok(Response::new(pb::LoginPasswordResponse {
            token_type: "Bearer".into(),
            access_token: token.token,
            expires_in_s: token.expires_in_s,
        }))
    }

    async fn set_password(
        &self,
        request: Request<pb::SetPasswordRequest>,
    ) -> Result<Response<pb::SetPasswordResponse>, Status> {
        let identity = self.core.identity(&request);
        let caller = identity.require_user()?.to_owned();
        let body = request.get_ref();
        let mut validation = Validation::new();
        let target = if body.user_id.is_empty() {
            AggregateId::parse(caller.as_str()).ok()
        } else {
            validation.parse("user_id", AggregateId::parse(body.user_id.as_str()))
        };
        let password = validation.parse("password", Password::parse(&body.password));
        let current = if identity.is_admin() {
            None
        } else {
            validation.parse(
                "current_password",
                PasswordAttempt::parse(&body.current_password)
                    .map_err(|_| "is required to change your own password"),
            )
        };
        validation.finish()?;
        let (Some(target), Some(password)) = (target, password) else {
            return Err(ApiError::Internal("validated fields missing".into()).into());
        };
        identity.require_owner_or_admin(target.as_str(), "credentials")?;
        let credentials = self
            .live(&target)
            .await?
            .ok_or_else(|| ApiError::NotFound("credentials".into()))?;
        if let Some(current) = current {
            // A wrong current password is a guess like a wrong login.
            let keys = [format!("id:{target}")];
            self.spend_guesses(&keys)?;
            if !self.verify(&current, &credentials).await? {
                return Err(ApiError::PermissionDenied.into());
            }
            self.refund_guesses(&keys);
        }
        let password_hash = self
            .passwords
            .hash(password)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let command = CredentialsCommand::ChangePassword {
            password_hash,
            at_ms: es_core::envelope::now_ms(),
        };
        let context = self.core.context(&request);
        self.core
            .execute(&target, &command, &context, rejected)
            .await?;
        tracing::info!(user_id = %target, by = %caller, "password changed");
        Ok(Response::new(pb::SetPasswordResponse {}))
    }
}
