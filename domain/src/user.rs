//! The User aggregate: a person with an account, whether they proved they
//! own its e-mail address, and the rules for the credentials they choose
//! (email shape, password policy).
//!
//! Password hashes are deliberately not part of any event: events are
//! published to every downstream subscriber, and a hash there would be an
//! offline-cracking target forever. The account's credentials live in a
//! mutable, access-controlled table beside the event store.

use crate::identity::{UserId, WorkspaceId};
use crate::personal::Personal;
use crate::validation::{required_text, ValidationErrors};
use serde::{Deserialize, Serialize};

/// The aggregate type name in the event store. Never rename it.
pub const AGGREGATE_TYPE: &str = "user";

pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_USER_NAME_CHARS: usize = 100;
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Bounds the work a login can ask of the password hasher.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A normalised email address: trimmed and lower-cased, so `Ann@X.io` and
/// `ann@x.io ` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Email(String);

/// The shape of an e-mail address the API accepts, as the schema states
/// it: before the `@`, dot-separated words of the characters an address
/// can be mailed with everywhere (ASCII letters, digits and
/// ``!#$%&'*+/=?^_`{|}~-``: an account whose address cannot be mailed
/// could never be verified); after it, a host of ASCII letters, digits and
/// hyphens with at least one dot (internationalised domains in their
/// `xn--` form); white space around it ignored, 254 characters at most.
/// Compiled here and served in the OpenAPI document, so clients and
/// server apply one rule. (A local part over 64 characters passes it but
/// no mail server takes it: such an account stays unverified.)
pub fn email_pattern() -> String {
    let space = crate::validation::white_space_class();
    let atom = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
    let local = format!("{atom}(?:\\.{atom})*");
    format!("^[{space}]*{local}@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+[{space}]*$")
}

static EMAIL: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(&email_pattern()).expect("the e-mail pattern compiles")
});

impl Email {
    /// Checks the raw length first (the schema's `maxLength`), then the
    /// shape ([`email_pattern`]); stores it trimmed and lower-cased.
    pub fn parse(raw: &str) -> Result<Email, String> {
        if raw.trim().is_empty() {
            return Err("must not be empty".to_owned());
        }
        if raw.chars().count() > MAX_EMAIL_CHARS {
            return Err(format!("must be at most {MAX_EMAIL_CHARS} characters"));
        }
        if !EMAIL.is_match(raw) {
            return Err("must be an email address like name@example.com".to_owned());
        }
        Ok(Email(raw.trim().to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Passwords everyone tries first, refused whatever their strength score
/// (the xkcd passphrase is in every cracking list).
const COMMON_PASSWORDS: &[&str] = &[
    "correct horse battery staple",
    "password1234",
    "123456789012",
    "qwertyuiopas",
    "passwordpassword",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "administrator",
    "changeme1234",
    "qwerty123456",
];

/// The password policy (NIST SP 800-63B style): long rather than complex.
/// 12 to 256 characters, not one repeated character, not a well-known password,
/// not the email address or its local part, and not guessable: zxcvbn
/// (its dictionaries of common passwords, names and words, keyboard
/// patterns, dates and substitutions) must estimate at least 10^10 guesses
/// (score 4 of 4 is not required; 3 is "safely unguessable" offline with a
/// slow hash, which argon2id is).
pub fn check_password_policy(password: &str, email: Option<&Email>) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return Err("must use at least 4 different characters".to_owned());
    }
    let lowered = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&lowered.as_str()) {
        return Err("is a well-known password; choose another".to_owned());
    }
    let local = email.map(|e| e.as_str().split('@').next().unwrap_or_default());
    if let (Some(email), Some(local)) = (email, local) {
        if lowered == email.as_str() || lowered == local {
            return Err("must not be your email address".to_owned());
        }
    }
    let personal: Vec<&str> = email.map(Email::as_str).into_iter().chain(local).collect();
    if zxcvbn::zxcvbn(password, &personal).score() < zxcvbn::Score::Three {
        return Err(
            "is too easy to guess (a common password, a word with digits, a pattern); \
             use a longer passphrase of unrelated words"
                .to_owned(),
        );
    }
    Ok(())
}

/// The product tier of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    #[default]
    Free,
    Pro,
    Enterprise,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Creates the account and asks for a verification mail to its address.
    Register {
        user_id: UserId,
        email: String,
        name: String,
        personal_workspace_id: WorkspaceId,
    },
    /// Asks for another verification mail (the last one was lost or expired).
    RequestVerification,
    /// `email` was proven: a verification token sent to it came back.
    VerifyEmail { email: Email },
}

crate::event_family::event_family! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    pub enum UserEvent of AGGREGATE_TYPE {
        Registered(UserRegistered) = "user.registered" v "1",
        VerificationRequested(VerificationRequested) = "user.verification_requested" v "1",
        EmailVerified(EmailVerified) = "user.email_verified" v "1",
    }
}

/// A verification mail is owed to `email`: the outbox the mailer consumes.
/// The token is minted and kept (hashed) by the mailer, never in an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct VerificationRequested {
    pub user_id: UserId,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    pub email: Personal<Email>,
    pub personal_workspace_id: WorkspaceId,
}

/// The account holder proved they receive mail at `email`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EmailVerified {
    pub user_id: UserId,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    pub email: Personal<Email>,
    pub personal_workspace_id: WorkspaceId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct UserRegistered {
    pub user_id: UserId,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    pub email: Personal<Email>,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    pub name: Personal<String>,
    pub tier: Tier,
    /// The workspace created for the user at sign-up, where they are owner.
    pub personal_workspace_id: WorkspaceId,
}

impl UserEvent {
    /// Users are not inside a workspace; their events are filed under the
    /// personal workspace created with them.
    pub fn workspace_id(&self) -> WorkspaceId {
        match self {
            UserEvent::Registered(e) => e.personal_workspace_id,
            UserEvent::VerificationRequested(e) => e.personal_workspace_id,
            UserEvent::EmailVerified(e) => e.personal_workspace_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("this user is already registered")]
    AlreadyRegistered,
    #[error("invalid registration: {0}")]
    Invalid(ValidationErrors),
    #[error("no such account")]
    NotFound,
    #[error("this e-mail address is already verified")]
    AlreadyVerified,
    #[error("the token was sent to an address this account no longer has")]
    AddressChanged,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct User {
    registered: Option<UserRegistered>,
    /// Absent from snapshots taken before verification existed.
    #[serde(default)]
    email_verified: bool,
}

impl User {
    pub fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::Register {
                user_id,
                email,
                name,
                personal_workspace_id,
            } => {
                if self.registered.is_some() {
                    return Err(UserError::AlreadyRegistered);
                }
                let mut errors = ValidationErrors::default();
                let email = match Email::parse(&email) {
                    Ok(email) => Some(email),
                    Err(message) => {
                        errors.add("email", message);
                        None
                    }
                };
                let name = required_text(&mut errors, "name", &name, MAX_USER_NAME_CHARS);
                errors.into_result().map_err(UserError::Invalid)?;
                let Some(email) = email else {
                    return Err(UserError::Invalid(ValidationErrors::default()));
                };
                Ok(vec![
                    UserEvent::Registered(UserRegistered {
                        user_id,
                        email: Personal::new(email.clone()),
                        name: Personal::new(name),
                        tier: Tier::Free,
                        personal_workspace_id,
                    }),
                    UserEvent::VerificationRequested(VerificationRequested {
                        user_id,
                        email: Personal::new(email),
                        personal_workspace_id,
                    }),
                ])
            }
            UserCommand::RequestVerification => {
                let registered = self.registered.as_ref().ok_or(UserError::NotFound)?;
                if self.email_verified {
                    return Err(UserError::AlreadyVerified);
                }
                Ok(vec![UserEvent::VerificationRequested(
                    VerificationRequested {
                        user_id: registered.user_id,
                        email: registered.email.clone(),
                        personal_workspace_id: registered.personal_workspace_id,
                    },
                )])
            }
            UserCommand::VerifyEmail { email } => {
                let registered = self.registered.as_ref().ok_or(UserError::NotFound)?;
                if *registered.email != email {
                    return Err(UserError::AddressChanged);
                }
                if self.email_verified {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::EmailVerified(EmailVerified {
                    user_id: registered.user_id,
                    email: Personal::new(email),
                    personal_workspace_id: registered.personal_workspace_id,
                })])
            }
        }
    }

    pub fn apply(&mut self, event: UserEvent) {
        match event {
            UserEvent::Registered(e) => self.registered = Some(e),
            UserEvent::VerificationRequested(_) => {}
            UserEvent::EmailVerified(_) => self.email_verified = true,
        }
    }

    /// Whether the account holder proved they own its e-mail address.
    pub fn email_verified(&self) -> bool {
        self.email_verified
    }

    pub fn registration(&self) -> Option<&UserRegistered> {
        self.registered.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn register(email: &str, name: &str) -> UserCommand {
        UserCommand::Register {
            user_id: UserId(Uuid::from_u128(1)),
            email: email.into(),
            name: name.into(),
            personal_workspace_id: WorkspaceId(Uuid::from_u128(2)),
        }
    }

    #[test]
    fn given_no_account_when_registering_then_the_email_is_stored_normalised() {
        let events = User::default()
            .decide(register("  Ann@Example.COM ", "Ann"))
            .unwrap();
        let UserEvent::Registered(e) = &events[0] else {
            panic!("{events:?}");
        };
        assert_eq!(e.email.as_str(), "ann@example.com");
        assert_eq!(e.tier, Tier::Free);
    }

    #[test]
    fn given_a_registered_user_when_registering_again_then_it_is_refused() {
        let mut user = User::default();
        for e in user.decide(register("a@b.io", "A")).unwrap() {
            user.apply(e);
        }
        assert_eq!(
            user.decide(register("a@b.io", "A")),
            Err(UserError::AlreadyRegistered)
        );
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let Err(UserError::Invalid(errors)) = User::default().decide(register("nope", " ")) else {
            panic!("expected invalid");
        };
        let fields: Vec<&str> = errors.fields().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "name"]);
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "", "a", "a@b", "@b.io", "a@.io", "a@b..io", "a b@c.io", "a@b.io.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(Email::parse("first.last+tag@sub.example.co").is_ok());
    }

    #[test]
    fn the_password_policy_wants_length_variety_and_no_obvious_choices() {
        let email = Email::parse("ann.smith@example.com").unwrap();
        assert!(check_password_policy("short", None).is_err());
        assert!(check_password_policy("aaaaaaaaaaaaaaaa", None).is_err());
        assert!(check_password_policy("Password1234", None).is_err());
        assert!(check_password_policy("ann.smith@example.com", Some(&email)).is_err());
        assert!(check_password_policy(&"x1y2".repeat(100), None).is_err());
        // What the review found accepted: common and published passwords.
        for guessable in [
            "Password123!",
            "correct horse battery staple",
            "qwertyuiop123",
        ] {
            assert!(
                check_password_policy(guessable, Some(&email)).is_err(),
                "{guessable}"
            );
        }
        assert!(check_password_policy("tundra-vivid-quartz-harbor-1987", Some(&email)).is_ok());
    }

    #[test]
    fn registering_asks_for_a_verification_mail_and_a_token_back_verifies_once() {
        let mut user = User::default();
        let events = user.decide(register("ann@example.com", "Ann")).unwrap();
        assert!(matches!(
            &events[..],
            [UserEvent::Registered(_), UserEvent::VerificationRequested(v)]
                if v.email.as_str() == "ann@example.com"
        ));
        for e in events {
            user.apply(e);
        }
        assert!(!user.email_verified());
        assert!(matches!(
            user.decide(UserCommand::RequestVerification).as_deref(),
            Ok([UserEvent::VerificationRequested(_)])
        ));
        let other = Email::parse("someone@else.example").unwrap();
        assert_eq!(
            user.decide(UserCommand::VerifyEmail { email: other }),
            Err(UserError::AddressChanged)
        );
        let own = Email::parse("ann@example.com").unwrap();
        for e in user
            .decide(UserCommand::VerifyEmail { email: own.clone() })
            .unwrap()
        {
            user.apply(e);
        }
        assert!(user.email_verified());
        assert_eq!(
            user.decide(UserCommand::VerifyEmail { email: own }),
            Ok(vec![])
        );
        assert_eq!(
            user.decide(UserCommand::RequestVerification),
            Err(UserError::AlreadyVerified)
        );
        assert_eq!(
            User::default().decide(UserCommand::RequestVerification),
            Err(UserError::NotFound)
        );
    }
}
