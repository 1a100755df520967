//! Reading the command line the way operators configure the service: every
//! message names the environment variable they set (and the flag), no
//! secret's value is ever echoed, and secrets are taken only from the
//! environment, because every user of the machine can read a command line.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};

/// Settings that are secrets: accepted only from the environment.
pub const SECRETS: &[&str] = &[
    "VCINTEL_JWT_SECRET",
    "VCINTEL_ADMIN_TOKEN",
    "VCINTEL_PRIVACY_MASTER_KEY",
    "VCINTEL_PRIVACY_PREVIOUS_MASTER_KEYS",
    "VCINTEL_LLM_API_KEY",
    "VCINTEL_DEMO_PASSWORD",
];

/// Why the command line cannot be used: the message to print and the exit
/// status (2, as for any usage error).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

/// Parses `args` against `command`: the matches, or what to tell the
/// operator. Help and version requests come back as clap's own error, to
/// be printed as clap prints them.
pub fn parse(
    command: Command,
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<ArgMatches, Result<Refusal, clap::Error>> {
    let mut command = command;
    command.build();
    let matches = match command.clone().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(error) => return Err(explain(&command, error)),
    };
    if let Some(secret) = secret_on_command_line(&command, &matches) {
        return Err(Ok(Refusal(format!(
            "{secret} must be set in the environment, not on the command line \
             (every user of the machine can read a command line)"
        ))));
    }
    Ok(matches)
}

/// The first secret given as a flag, by its environment variable.
fn secret_on_command_line(command: &Command, matches: &ArgMatches) -> Option<String> {
    for arg in command.get_arguments() {
        let Some(env) = env_of(arg) else {
            continue;
        };
        let from_command_line =
            matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine);
        if from_command_line && SECRETS.contains(&env.as_str()) {
            return Some(env);
        }
    }
    let (name, sub_matches) = matches.subcommand()?;
    secret_on_command_line(command.find_subcommand(name)?, sub_matches)
}

fn env_of(arg: &Arg) -> Option<String> {
    arg.get_env().map(|env| env.to_string_lossy().into_owned())
}

/// Turns clap's error into one that names the environment variable and
/// never shows a hidden value; other errors (help, version, unknown
/// subcommands) stay clap's.
fn explain(command: &Command, error: clap::Error) -> Result<Refusal, clap::Error> {
    let named = |flag: &str| -> Option<(String, bool)> {
        let long = flag.split_whitespace().next()?.strip_prefix("--")?;
        let arg = find_arg(command, long)?;
        let env = env_of(arg);
        let label = match env {
            Some(env) => format!("{env} (--{long})"),
            None => format!("--{long}"),
        };
        Some((label, arg.is_hide_env_values_set()))
    };
    match error.kind() {
        ErrorKind::ValueValidation | ErrorKind::InvalidValue => {
            let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else {
                return Err(error);
            };
            let Some((label, hidden)) = named(flag) else {
                return Err(error);
            };
            let reason = std::error::Error::source(&error)
                .map(ToString::to_string)
                .or_else(|| match error.get(ContextKind::ValidValue) {
                    Some(ContextValue::Strings(valid)) => {
                        Some(format!("must be one of {}", valid.join(", ")))
                    }
                    _ => None,
                })
                .unwrap_or_else(|| "invalid value".to_owned());
            let value = match error.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(value)) if !hidden => format!(" '{value}'"),
                _ => String::new(),
            };
            Ok(Refusal(format!("{label}: invalid value{value}: {reason}")))
        }
        ErrorKind::MissingRequiredArgument => {
            let Some(ContextValue::Strings(flags)) = error.get(ContextKind::InvalidArg) else {
                return Err(error);
            };
            let missing: Vec<String> = flags
                .iter()
                .map(|flag| named(flag).map_or_else(|| flag.clone(), |(label, _)| label))
                .collect();
            Ok(Refusal(format!("missing settings: {}", missing.join(", "))))
        }
        _ => Err(error),
    }
}

/// The argument with this long flag anywhere in the command tree.
fn find_arg<'c>(command: &'c Command, long: &str) -> Option<&'c Arg> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|sub| find_arg(sub, long))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn refusal(args: &[&str]) -> String {
        let outcome = parse(
            crate::cli::Cli::command(),
            args.iter().map(std::ffi::OsString::from),
        );
        match outcome {
            Err(Ok(Refusal(message))) => message,
            Err(Err(error)) => panic!("clap's own error: {error}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn a_short_secret_is_named_by_its_variable_and_never_echoed() {
        let message = refusal(&[
            "vcintel",
            "serve",
            "--database-url",
            "postgres://localhost/x",
            "--jwt-secret",
            "Zq8r-short",
        ]);
        assert!(!message.contains("Zq8r"), "{message}");
        assert_eq!(
            message,
            "VCINTEL_JWT_SECRET (--jwt-secret): invalid value: must be at least 32 bytes"
        );
    }

    #[test]
    fn a_secret_on_the_command_line_is_refused_without_echoing_it() {
        let message = refusal(&[
            "vcintel",
            "serve",
            "--database-url",
            "postgres://localhost/x",
            "--jwt-secret",
            "Zq8r-a-secret-long-enough-to-be-valid-0123456789",
        ]);
        assert!(!message.contains("Zq8r"), "{message}");
        assert!(
            message.starts_with("VCINTEL_JWT_SECRET must be set in the environment"),
            "{message}"
        );
    }

    #[test]
    fn a_bad_plain_value_is_named_by_its_variable_and_shown() {
        let message = refusal(&[
            "vcintel",
            "serve",
            "--database-url",
            "postgres://localhost/x",
            "--bind",
            "nowhere",
        ]);
        assert!(
            message.starts_with("VCINTEL_BIND (--bind): invalid value 'nowhere': "),
            "{message}"
        );
    }

    #[test]
    fn a_setting_with_a_parser_of_its_own_gives_its_reason() {
        let message = refusal(&[
            "vcintel",
            "serve",
            "--database-url",
            "postgres://localhost/x",
            "--stream-replicas",
            "seven",
        ]);
        assert_eq!(
            message,
            "VCINTEL_STREAM_REPLICAS (--stream-replicas): invalid value 'seven': \
             must be `auto` or a count from 1 to 5"
        );
    }
}
