//! The dead-letter API: operators see what consumers gave up on, and replay
//! or discard it, over gRPC and (through the gateway) REST.
//!
//! A thin layer over es-core's [`DeadLetters`], the same operations as the
//! `stocklet dlq` command; admin only. It lives in the order service, home
//! of the saga's operations (stuck sagas), because dead letters are the
//! other half of "why is this order not moving".

use es_core::deadletter::{DeadLetter, DeadLetterError, DeadLetters};
use prost_reflect::{DescriptorPool, DynamicMessage};
use stocklet_proto::stocklet::order::v1::{
    self as pb, dead_letter_service_server::DeadLetterService,
};
use stocklet_service_kit::pagination::PageRequest;
use stocklet_service_kit::{ApiError, Identity, Validation};
use tonic::{Request, Response, Status};

/// What a consumer's name is, for clients who send another.
const CONSUMER_NAME: &str = "is a durable consumer's name: 1 to 64 letters, digits, '-' or '_'";

/// Whether `name` can be a durable consumer's (and so a subject token).
fn is_consumer_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Most letters one replay or discard by sequence may name.
const MAX_SEQUENCES: usize = 100;

/// The dead-letter service.
#[derive(Clone)]
pub struct DeadLetterApi {
    letters: DeadLetters,
    descriptors: DescriptorPool,
}

impl DeadLetterApi {
    /// The API over the dead-letter stream, decoding events with
    /// `descriptors`.
    pub fn new(letters: DeadLetters, descriptors: DescriptorPool) -> Self {
        Self {
            letters,
            descriptors,
        }
    }

    fn require_admin<T>(&self, request: &Request<T>) -> Result<(), ApiError> {
        Identity::of(request).require_admin().map(drop)
    }

    /// The letters a replay or discard names: its sequences, or every
    /// letter of one consumer.
    async fn selected(
        &self,
        sequences: &[i64],
        consumer: &str,
        all: bool,
    ) -> Result<Vec<u64>, ApiError> {
        let mut validation = Validation::new();
        if all {
            validation
                .check(is_consumer_name(consumer), "consumer", CONSUMER_NAME)
                .check(sequences.is_empty(), "sequences", "must be empty with all");
        } else {
            validation
                .check(
                    !sequences.is_empty(),
                    "sequences",
                    "name at least one letter, or set consumer and all",
                )
                .check(
                    sequences.len() <= MAX_SEQUENCES,
                    "sequences",
                    format!("at most {MAX_SEQUENCES} at once"),
                )
                .check(
                    sequences.iter().all(|s| *s > 0),
                    "sequences",
                    "sequences are positive",
                )
                .check(consumer.is_empty(), "consumer", "is only used with all");
        }
        validation.finish()?;
        if !all {
            return Ok(sequences.iter().map(|s| s.unsigned_abs()).collect());
        }
        let mut selected = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .letters
                .list(Some(consumer), after, 100)
                .await
                .map_err(api_error)?;
            let Some(last) = page.last() else {
                return Ok(selected);
            };
            after = last.sequence;
            selected.extend(page.iter().map(|letter| letter.sequence));
        }
    }

    fn event_json(&self, letter: &DeadLetter) -> String {
        self.descriptors
            .get_message_by_name(&letter.event_type)
            .and_then(|descriptor| DynamicMessage::decode(descriptor, letter.payload.clone()).ok())
            .and_then(|message| serde_json::to_string(&message).ok())
            .unwrap_or_default()
    }
}

#[tonic::async_trait]
impl DeadLetterService for DeadLetterApi {
    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        self.require_admin(&request)?;
        let body = request.get_ref();
        let mut validation = Validation::new();
        let page = validation.page(body.page_size, &body.page_token);
        let after = page
            .as_ref()
            .and_then(|page| page.after.as_deref())
            .map_or(Ok(0), str::parse::<u64>);
        validation
            .check(
                after.is_ok(),
                "page_token",
                "is not a token this method gave",
            )
            .check(
                body.consumer.is_empty() || is_consumer_name(&body.consumer),
                "consumer",
                CONSUMER_NAME,
            );
        validation.finish()?;
        let (Some(page), Ok(after)) = (page, after) else {
            return Err(ApiError::Internal("a valid page went missing".into()).into());
        };
        let consumer = (!body.consumer.is_empty()).then_some(body.consumer.as_str());
        let limit = usize::try_from(page.fetch_limit()).unwrap_or(usize::MAX);
        let letters = self
            .letters
            .list(consumer, after, limit)
            .await
            .map_err(api_error)?;
        let (letters, next_page_token) = finish(&page, letters);
        Ok(Response::new(pb::ListDeadLettersResponse {
            dead_letters: letters.iter().map(to_pb).collect(),
            next_page_token,
        }))
    }

    async fn view_dead_letter(
        &self,
        request: Request<pb::ViewDeadLetterRequest>,
    ) -> Result<Response<pb::ViewDeadLetterResponse>, Status> {
        self.require_admin(&request)?;
        let sequence = request.get_ref().sequence;
        if sequence <= 0 {
            return Err(ApiError::invalid("sequence", "sequences are positive").into());
        }
        let letter = self
            .letters
            .get(sequence.unsigned_abs())
            .await
            .map_err(api_error)?;
        Ok(Response::new(pb::ViewDeadLetterResponse {
            event_json: self.event_json(&letter),
            dead_letter: Some(to_pb(&letter)),
        }))
    }

    async fn replay_dead_letters(
        &self,
        request: Request<pb::ReplayDeadLettersRequest>,
    ) -> Result<Response<pb::ReplayDeadLettersResponse>, Status> {
        self.require_admin(&request)?;
        let body = request.get_ref();
        let mut replayed = Vec::new();
        for sequence in self
            .selected(&body.sequences, &body.consumer, body.all)
            .await?
        {
            let letter = self.letters.replay(sequence).await.map_err(api_error)?;
            tracing::info!(sequence, consumer = %letter.consumer, event_type = %letter.event_type, "dead letter replayed");
            replayed.push(to_pb(&letter));
        }
        Ok(Response::new(pb::ReplayDeadLettersResponse { replayed }))
    }

    async fn discard_dead_letters(
        &self,
        request: Request<pb::DiscardDeadLettersRequest>,
    ) -> Result<Response<pb::DiscardDeadLettersResponse>, Status> {
        self.require_admin(&request)?;
        let body = request.get_ref();
        let mut discarded = Vec::new();
        for sequence in self
            .selected(&body.sequences, &body.consumer, body.all)
            .await?
        {
            self.letters.discard(sequence).await.map_err(api_error)?;
            tracing::info!(sequence, "dead letter discarded");
            discarded.push(i64::try_from(sequence).unwrap_or(i64::MAX));
        }
        Ok(Response::new(pb::DiscardDeadLettersResponse { discarded }))
    }
}

/// The page and its next token (the last letter's sequence).
fn finish(page: &PageRequest, letters: Vec<DeadLetter>) -> (Vec<DeadLetter>, String) {
    page.finish(letters, |letter| letter.sequence.to_string())
}

fn to_pb(letter: &DeadLetter) -> pb::DeadLetter {
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    pb::DeadLetter {
        sequence: int(letter.sequence),
        consumer: letter.consumer.clone(),
        error: letter.error.clone(),
        stream: letter.stream.clone(),
        stream_sequence: int(letter.stream_sequence),
        subject: letter.subject.clone(),
        deliveries: int(letter.deliveries),
        event_type: letter.event_type.clone(),
        event_id: letter.event_id.clone(),
        order_id: letter.correlation_id.clone(),
        dead_lettered_at_ms: letter.dead_lettered_at_ms,
    }
}

fn api_error(error: DeadLetterError) -> ApiError {
    match error {
        DeadLetterError::NotFound(sequence) => {
            ApiError::NotFound(format!("dead letter {sequence}"))
        }
        DeadLetterError::NoReplay { .. } => ApiError::FailedPrecondition(error.to_string()),
        other => ApiError::Unavailable(other.to_string()),
    }
}
