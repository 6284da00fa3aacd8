//! `stocklet dlq`: what an operator does with the dead-letter stream.
//!
//! A consumer that gives up on an event files it in `DEADLETTER` with the
//! error (see es-core's `deadletter` module). These subcommands show the
//! letters and, once the cause is fixed, hand them back to their consumer
//! (replay) or drop them (discard). Replay is idempotent: the reaction's
//! dedupe keys come from the original event. A projection's letters are
//! fixed by rebuilding its read model, then discarded.
//!
//! ```text
//! stocklet dlq list [--consumer NAME]
//! stocklet dlq show SEQUENCE
//! stocklet dlq replay (SEQUENCE... | --consumer NAME --all)
//! stocklet dlq discard (SEQUENCE... | --consumer NAME --all)
//! ```
//!
//! It connects to `NATS_URL` as the NATS user `provision`
//! (`STOCKLET_PROVISION_NATS_PASSWORD`): the deployment's operator, not a
//! service.

use std::process::ExitCode;

use es_core::deadletter::{DeadLetter, DeadLetterError, DeadLetters};
use prost_reflect::{DescriptorPool, DynamicMessage};
use stocklet_service_kit::config::{CommonConfig, PROVISION_NATS_USER};
use stocklet_service_kit::lifecycle;

const USAGE: &str = "usage: stocklet dlq list [--consumer NAME]
       stocklet dlq show SEQUENCE
       stocklet dlq replay (SEQUENCE... | --consumer NAME --all)
       stocklet dlq discard (SEQUENCE... | --consumer NAME --all)";

/// Letters read per page when listing.
const PAGE: usize = 100;

/// What was asked, parsed from the arguments after `dlq`.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    List { consumer: Option<String> },
    Show(u64),
    Replay(Selection),
    Discard(Selection),
}

/// The letters a replay or discard applies to.
#[derive(Debug, PartialEq, Eq)]
enum Selection {
    Sequences(Vec<u64>),
    AllOf(String),
}

fn parse(args: &[String]) -> Result<Command, String> {
    let (verb, rest) = args.split_first().ok_or("a subcommand is missing")?;
    let consumer = |rest: &[String]| -> Result<Option<String>, String> {
        match rest {
            [] => Ok(None),
            [flag, name] if flag == "--consumer" && !name.is_empty() => Ok(Some(name.clone())),
            _ => Err(format!("unexpected arguments {rest:?}")),
        }
    };
    let selection = |rest: &[String]| -> Result<Selection, String> {
        match rest {
            [flag, name, all] | [all, flag, name]
                if flag == "--consumer" && all == "--all" && !name.is_empty() =>
            {
                Ok(Selection::AllOf(name.clone()))
            }
            [] => Err("name the letters: SEQUENCE... or --consumer NAME --all".into()),
            sequences => sequences
                .iter()
                .map(|s| {
                    s.parse()
                        .map_err(|_| format!("{s:?} is not a sequence number"))
                })
                .collect::<Result<_, _>>()
                .map(Selection::Sequences),
        }
    };
    match verb.as_str() {
        "list" => Ok(Command::List {
            consumer: consumer(rest)?,
        }),
        "show" => match rest {
            [sequence] => sequence
                .parse()
                .map(Command::Show)
                .map_err(|_| format!("{sequence:?} is not a sequence number")),
            _ => Err("show takes one SEQUENCE".into()),
        },
        "replay" => selection(rest).map(Command::Replay),
        "discard" => selection(rest).map(Command::Discard),
        other => Err(format!("unknown subcommand {other:?}")),
    }
}

/// Runs `stocklet dlq ARGS...`.
pub async fn main(args: &[String]) -> ExitCode {
    let command = match parse(args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("{error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match CommonConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let store = match provisioner_store(&config).await {
        Ok(store) => store,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let letters = DeadLetters::new(store.context().clone(), lifecycle::conventions());
    match run(&letters, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// The event store as the provisioner, or why not.
async fn provisioner_store(config: &CommonConfig) -> Result<es_core::JetStreamEventStore, String> {
    let credentials = config
        .nats_passwords
        .credentials(PROVISION_NATS_USER)
        .map_err(|e| e.to_string())?;
    lifecycle::connect_event_store(&config.nats_url, &credentials)
        .await
        .map_err(|e| e.to_string())
}

async fn run(letters: &DeadLetters, command: Command) -> Result<(), DeadLetterError> {
    match command {
        Command::List { consumer } => {
            let all = every_letter(letters, consumer.as_deref()).await?;
            println!("SEQUENCE\tCONSUMER\tEVENT TYPE\tORDER\tFROM\tERROR");
            for letter in &all {
                println!(
                    "{}\t{}\t{}\t{}\t{}:{}\t{}",
                    letter.sequence,
                    letter.consumer,
                    letter.event_type,
                    or_dash(&letter.correlation_id),
                    letter.stream,
                    letter.stream_sequence,
                    letter.error
                );
            }
            eprintln!("{} dead letters", all.len());
        }
        Command::Show(sequence) => {
            let letter = letters.get(sequence).await?;
            println!("{}", describe(&letter));
        }
        Command::Replay(selection) => {
            for sequence in selected(letters, selection).await? {
                let letter = letters.replay(sequence).await?;
                println!(
                    "replayed {sequence} ({} of {}) to {}",
                    letter.event_type, letter.stream, letter.consumer
                );
            }
        }
        Command::Discard(selection) => {
            for sequence in selected(letters, selection).await? {
                letters.discard(sequence).await?;
                println!("discarded {sequence}");
            }
        }
    }
    Ok(())
}

async fn every_letter(
    letters: &DeadLetters,
    consumer: Option<&str>,
) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = letters.list(consumer, after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(all);
        };
        after = last.sequence;
        let full = page.len() == PAGE;
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

async fn selected(
    letters: &DeadLetters,
    selection: Selection,
) -> Result<Vec<u64>, DeadLetterError> {
    match selection {
        Selection::Sequences(sequences) => Ok(sequences),
        Selection::AllOf(consumer) => Ok(every_letter(letters, Some(&consumer))
            .await?
            .iter()
            .map(|letter| letter.sequence)
            .collect()),
    }
}

/// A letter as JSON, its event decoded from the protobuf descriptors.
fn describe(letter: &DeadLetter) -> String {
    let event = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET)
        .ok()
        .and_then(|pool| pool.get_message_by_name(&letter.event_type))
        .and_then(|descriptor| DynamicMessage::decode(descriptor, letter.payload.clone()).ok())
        .and_then(|message| serde_json::to_value(&message).ok())
        .unwrap_or_else(|| serde_json::json!({ "undecoded_bytes": letter.payload.len() }));
    let described = serde_json::json!({
        "sequence": letter.sequence,
        "consumer": letter.consumer,
        "error": letter.error,
        "stream": letter.stream,
        "stream_sequence": letter.stream_sequence,
        "subject": letter.subject,
        "deliveries": letter.deliveries,
        "event_type": letter.event_type,
        "event_id": letter.event_id,
        "correlation_id": letter.correlation_id,
        "dead_lettered_at_ms": letter.dead_lettered_at_ms,
        "event": event,
    });
    serde_json::to_string_pretty(&described).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn or_dash(value: &str) -> &str {
    if value.is_empty() { "-" } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn arguments_parse_into_commands_or_say_what_is_wrong() {
        assert_eq!(parse(&args("list")), Ok(Command::List { consumer: None }));
        assert_eq!(
            parse(&args("list --consumer payment-from-order")),
            Ok(Command::List {
                consumer: Some("payment-from-order".into())
            })
        );
        assert_eq!(parse(&args("show 7")), Ok(Command::Show(7)));
        assert_eq!(
            parse(&args("replay 3 4")),
            Ok(Command::Replay(Selection::Sequences(vec![3, 4])))
        );
        assert_eq!(
            parse(&args("discard --consumer x --all")),
            Ok(Command::Discard(Selection::AllOf("x".into())))
        );
        assert_eq!(
            parse(&args("replay --all --consumer x")),
            Ok(Command::Replay(Selection::AllOf("x".into())))
        );
        for bad in [
            "",
            "show",
            "show x",
            "replay",
            "replay 1 two",
            "list --all",
            "purge 1",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?} parsed");
        }
    }
}
