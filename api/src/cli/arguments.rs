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
    let mut declared = command.clone();
    declared.build();
    let mut command = secrets_from_the_environment(command);
    command.build();
    let matches = match command.clone().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(error) => return Err(explain(&command, &declared, error)),
    };
    if let Some(secret) = secret_on_command_line(&command, &matches) {
        return Err(Ok(Refusal(format!(
            "{secret} must be set in the environment, not on the command line \
             (every user of the machine can read a command line)"
        ))));
    }
    let unset = unset_required_secrets(&declared, &matches);
    if !unset.is_empty() {
        return Err(Ok(Refusal(format!(
            "missing settings: {}",
            unset.join(", ")
        ))));
    }
    Ok(matches)
}

/// The required secrets of the subcommand `matches` ran that have no value,
/// by their variable (`secrets_from_the_environment` makes them optional
/// for clap, which would otherwise show their flags in the usage line).
fn unset_required_secrets(declared: &Command, matches: &ArgMatches) -> Vec<String> {
    let mut unset: Vec<String> = required_secrets(declared)
        .filter(|(id, _)| matches.value_source(id.as_str()).is_none())
        .map(|(_, env)| env)
        .collect();
    if let Some((name, sub_matches)) = matches.subcommand() {
        if let Some(sub) = declared.find_subcommand(name) {
            unset.extend(unset_required_secrets(sub, sub_matches));
        }
    }
    unset
}

/// The secrets `command` requires, by id and variable.
fn required_secrets(command: &Command) -> impl Iterator<Item = (clap::Id, String)> + '_ {
    command.get_arguments().filter_map(|arg| {
        let env = env_of(arg).filter(|env| SECRETS.contains(&env.as_str()))?;
        arg.is_required_set().then(|| (arg.get_id().clone(), env))
    })
}

/// `command` with its secrets' flags left out of help and usage (they are
/// refused), each secret listed instead under its environment variable.
fn secrets_from_the_environment(command: Command) -> Command {
    let secrets: Vec<(clap::Id, String, String)> = command
        .get_arguments()
        .filter_map(|arg| {
            let env = env_of(arg).filter(|env| SECRETS.contains(&env.as_str()))?;
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            Some((arg.get_id().clone(), env, help))
        })
        .collect();
    let mut command = command;
    if !secrets.is_empty() {
        let width = secrets
            .iter()
            .map(|(_, env, _)| env.len())
            .max()
            .unwrap_or(0);
        let mut listing = String::from(
            "Secrets, from the environment only (a command line is readable by every user):",
        );
        for (id, env, help) in secrets {
            listing.push_str(&format!("\n  {env:width$}  {help}"));
            command = command.mut_arg(id, |arg| arg.hide(true).required(false));
        }
        command = command.after_help(listing);
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for name in names {
        command = command.mut_subcommand(name, secrets_from_the_environment);
    }
    command
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
fn explain(
    command: &Command,
    declared: &Command,
    error: clap::Error,
) -> Result<Refusal, clap::Error> {
    let named = |flag: &str| -> Option<(String, bool)> {
        let long = flag.split_whitespace().next()?.strip_prefix("--")?;
        let arg = find_arg(command, long)?;
        // A secret's flag is refused, so only its variable is named.
        let label = match env_of(arg) {
            Some(env) if SECRETS.contains(&env.as_str()) => env,
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
            let mut missing: Vec<String> = flags
                .iter()
                .map(|flag| named(flag).map_or_else(|| flag.clone(), |(label, _)| label))
                .collect();
            // The secrets the same command requires are not clap's to
            // report (it takes them as optional): those unset join the list.
            let owner = flags
                .first()
                .and_then(|flag| flag.split_whitespace().next()?.strip_prefix("--"))
                .and_then(|long| command_with_arg(declared, long));
            if let Some(owner) = owner {
                let set = |env: &str| std::env::var_os(env).is_some_and(|value| !value.is_empty());
                missing.extend(
                    required_secrets(owner)
                        .map(|(_, env)| env)
                        .filter(|env| !set(env)),
                );
            }
            Ok(Refusal(format!("missing settings: {}", missing.join(", "))))
        }
        _ => Err(error),
    }
}

/// The (sub)command that declares this long flag.
fn command_with_arg<'c>(command: &'c Command, long: &str) -> Option<&'c Command> {
    if command
        .get_arguments()
        .any(|arg| arg.get_long() == Some(long))
    {
        return Some(command);
    }
    command
        .get_subcommands()
        .find_map(|sub| command_with_arg(sub, long))
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
            "VCINTEL_JWT_SECRET: invalid value: must be at least 32 bytes"
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
    fn help_lists_secrets_by_their_variable_and_offers_no_flag_for_them() {
        for command in [
            &["vcintel", "serve", "--help"][..],
            &["vcintel", "projections", "--help"],
        ] {
            let outcome = parse(
                crate::cli::Cli::command(),
                command.iter().map(std::ffi::OsString::from),
            );
            let Err(Err(help)) = outcome else {
                panic!("{command:?} printed no help");
            };
            let text = help.render().to_string();
            assert!(
                text.contains("Secrets, from the environment only"),
                "{text}"
            );
            assert!(text.contains("VCINTEL_PRIVACY_MASTER_KEY"), "{text}");
            assert!(!text.contains("--master-key "), "{text}");
            assert!(!text.contains("--jwt-secret"), "{text}");
        }
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
