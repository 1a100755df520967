//! Enrichment: what the system learns about a company from its website, the
//! job aggregate that produces it, and the fit score.
//!
//! A job's life is its events: requested → started → (attempt failed →
//! started …) → succeeded, or given up after [`MAX_ATTEMPTS`]; a job can be
//! deferred while the model provider is unavailable and started again
//! later. The result is validated here before any event can carry it, and
//! the fit score is computed by code from the result's signals and the
//! workspace's thesis, never taken from a model.

use crate::company::{CompanyId, Stage};
use crate::identity::{Actor, Permission, UserId, WorkspaceId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The aggregate type name in the event store. Never rename it.
pub const AGGREGATE_TYPE: &str = "enrichment_job";

/// The type of a job's success, which the companies read model reacts to
/// (the result lands on the company).
pub const SUCCEEDED_EVENT_TYPE: &str = "enrichment.succeeded";

/// Attempts before a job is given up.
pub const MAX_ATTEMPTS: u32 = 3;

pub const MAX_SUMMARY_CHARS: usize = 600;
pub const MAX_WHAT_IT_DOES_CHARS: usize = 300;
pub const MAX_KEYWORDS: usize = 12;
pub const MAX_KEYWORD_CHARS: usize = 40;
pub const MAX_SIGNALS: usize = 10;
pub const MAX_EVIDENCE_CHARS: usize = 200;
pub const MAX_ERROR_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct EnrichmentJobId(pub Uuid);

impl std::fmt::Display for EnrichmentJobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    fn weight(self) -> f64 {
        match self {
            Confidence::Low => 0.5,
            Confidence::Medium => 0.75,
            Confidence::High => 1.0,
        }
    }
}

/// What a signal says about the company; a fixed vocabulary, so the score
/// can weigh it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Funding,
    Revenue,
    EnterpriseCustomers,
    Hiring,
    ProductLaunch,
    Partnerships,
    OpenSource,
    Compliance,
}

impl SignalKind {
    pub const ALL: [SignalKind; 8] = [
        SignalKind::Funding,
        SignalKind::Revenue,
        SignalKind::EnterpriseCustomers,
        SignalKind::Hiring,
        SignalKind::ProductLaunch,
        SignalKind::Partnerships,
        SignalKind::OpenSource,
        SignalKind::Compliance,
    ];

    /// Points a signal adds to the fit score at high confidence.
    fn points(self) -> f64 {
        match self {
            SignalKind::Funding | SignalKind::Revenue => 8.0,
            SignalKind::EnterpriseCustomers => 6.0,
            SignalKind::Hiring | SignalKind::ProductLaunch => 4.0,
            SignalKind::Partnerships => 3.0,
            SignalKind::OpenSource | SignalKind::Compliance => 2.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Signal {
    pub kind: SignalKind,
    /// The words on the page that support it.
    #[cfg_attr(
        feature = "schema",
        schema(example = "Series A led by Northwind Ventures, announced March 2026")
    )]
    pub evidence: String,
    pub confidence: Confidence,
}

/// Who produced a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnrichmentSource {
    /// The built-in deterministic enricher (no model configured).
    Heuristic { version: String },
    /// An OpenAI-compatible model.
    Model {
        model: String,
        prompt_version: String,
    },
}

/// What the extraction found, before scoring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Extraction {
    pub summary: String,
    pub what_it_does: String,
    pub keywords: Vec<String>,
    /// The sector the page suggests, if any.
    pub sector: Option<String>,
    pub signals: Vec<Signal>,
    pub confidence: Confidence,
}

/// Tokens and cost of the model calls that produced a result (zero for the
/// heuristic enricher and for cache hits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Usage {
    #[cfg_attr(feature = "schema", schema(example = 1480))]
    pub tokens_in: u64,
    #[cfg_attr(feature = "schema", schema(example = 260))]
    pub tokens_out: u64,
    /// Millionths of a US dollar, so sums stay exact.
    #[cfg_attr(feature = "schema", schema(example = 378))]
    pub cost_micro_usd: u64,
}

/// An accepted enrichment: the validated extraction, its score and provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnrichmentResult {
    #[serde(flatten)]
    pub extraction: Extraction,
    /// 0–100, computed by [`fit_score`].
    pub score: u8,
    pub source: EnrichmentSource,
    /// Reused from an earlier identical request (same site content, model
    /// and prompt), at no cost.
    pub cached: bool,
    pub usage: Usage,
    /// SHA-256 of the page text the extraction was made from.
    pub content_hash: String,
}

/// Why an extraction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct InvalidExtraction {
    pub field: String,
    pub problem: String,
}

impl Extraction {
    /// Checks lengths, counts and content; trims and de-duplicates keywords.
    /// URLs and markup are refused anywhere: a page's prompt injection must
    /// not be able to smuggle links or HTML into what analysts see.
    pub fn validated(self) -> Result<Extraction, InvalidExtraction> {
        let bad = |field: &str, problem: &str| InvalidExtraction {
            field: field.to_owned(),
            problem: problem.to_owned(),
        };
        let summary = checked_text("summary", &self.summary, MAX_SUMMARY_CHARS, true)?;
        let what_it_does = checked_text(
            "what_it_does",
            &self.what_it_does,
            MAX_WHAT_IT_DOES_CHARS,
            true,
        )?;
        if self.keywords.len() > MAX_KEYWORDS {
            return Err(bad("keywords", &format!("must be at most {MAX_KEYWORDS}")));
        }
        let mut keywords: Vec<String> = Vec::new();
        for (i, keyword) in self.keywords.iter().enumerate() {
            let keyword =
                checked_text(&format!("keywords[{i}]"), keyword, MAX_KEYWORD_CHARS, true)?
                    .to_lowercase();
            if !keywords.contains(&keyword) {
                keywords.push(keyword);
            }
        }
        let sector = match self.sector {
            Some(sector) if !sector.trim().is_empty() => {
                Some(checked_text("sector", &sector, 60, true)?)
            }
            _ => None,
        };
        if self.signals.len() > MAX_SIGNALS {
            return Err(bad("signals", &format!("must be at most {MAX_SIGNALS}")));
        }
        let mut signals = Vec::with_capacity(self.signals.len());
        for (i, signal) in self.signals.into_iter().enumerate() {
            signals.push(Signal {
                evidence: checked_text(
                    &format!("signals[{i}].evidence"),
                    &signal.evidence,
                    MAX_EVIDENCE_CHARS,
                    false,
                )?,
                ..signal
            });
        }
        Ok(Extraction {
            summary,
            what_it_does,
            keywords,
            sector,
            signals,
            confidence: self.confidence,
        })
    }
}

fn checked_text(
    field: &str,
    text: &str,
    max_chars: usize,
    required: bool,
) -> Result<String, InvalidExtraction> {
    let bad = |problem: String| InvalidExtraction {
        field: field.to_owned(),
        problem,
    };
    // Judged as a reader would see it, and stored that way.
    let text = crate::untrusted::normalised(text);
    if required && text.is_empty() {
        return Err(bad("must not be empty".to_owned()));
    }
    if text.chars().count() > max_chars {
        return Err(bad(format!("must be at most {max_chars} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(bad("must not contain control characters".to_owned()));
    }
    if contains_markup_or_link(&text) {
        return Err(bad("must not contain links or markup".to_owned()));
    }
    Ok(text)
}

pub use crate::untrusted::contains_markup_or_link;

/// What a workspace invests in; enrichment's fit score weighs companies
/// against it. Empty lists mean "no preference". Clients send it as it is
/// stored; an omitted list is empty and unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(example = json!({"sectors": ["Developer tools", "AI infrastructure"], "stages": ["seed", "series_a"], "locations": ["Berlin", "London"]})))]
#[serde(deny_unknown_fields)]
pub struct Thesis {
    /// At most 20, each 1–60 characters.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(max_items = 20))]
    pub sectors: Vec<String>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(max_items = 20))]
    pub stages: Vec<Stage>,
    /// At most 20, each 1–60 characters.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(max_items = 20))]
    pub locations: Vec<String>,
}

/// Entries a thesis list may hold.
pub const MAX_THESIS_ENTRIES: usize = 20;
/// Characters a thesis entry may have.
pub const MAX_THESIS_ENTRY_CHARS: usize = 60;

impl Thesis {
    /// A thesis as a client wrote it, validated (every fault named, by
    /// field and index) and normalised: entries trimmed, repeats dropped
    /// (case-insensitively for text).
    pub fn parse(
        sectors: Vec<String>,
        stages: Vec<Stage>,
        locations: Vec<String>,
    ) -> Result<Thesis, crate::ValidationErrors> {
        let mut errors = crate::ValidationErrors::default();
        let sectors = thesis_list(&mut errors, "sectors", sectors);
        let locations = thesis_list(&mut errors, "locations", locations);
        if stages.len() > MAX_THESIS_ENTRIES {
            errors.add(
                "stages",
                format!("must have at most {MAX_THESIS_ENTRIES} entries"),
            );
        }
        errors.into_result()?;
        let mut unique_stages: Vec<Stage> = Vec::new();
        for stage in stages {
            if !unique_stages.contains(&stage) {
                unique_stages.push(stage);
            }
        }
        Ok(Thesis {
            sectors,
            stages: unique_stages,
            locations,
        })
    }
}

fn thesis_list(
    errors: &mut crate::ValidationErrors,
    field: &str,
    values: Vec<String>,
) -> Vec<String> {
    if values.len() > MAX_THESIS_ENTRIES {
        errors.add(
            field,
            format!("must have at most {MAX_THESIS_ENTRIES} entries"),
        );
    }
    let mut kept: Vec<String> = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let value = value.trim().to_owned();
        let count = value.chars().count();
        if count == 0
            || count > MAX_THESIS_ENTRY_CHARS
            || value.chars().any(crate::validation::is_deceptive)
        {
            errors.add(
                format!("{field}[{i}]"),
                format!("must be 1–{MAX_THESIS_ENTRY_CHARS} characters of text"),
            );
        } else if !kept.iter().any(|k| k.eq_ignore_ascii_case(&value)) {
            kept.push(value);
        }
    }
    kept
}

/// The facts about a company the score weighs besides the signals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompanyFacts {
    pub sector: Option<String>,
    pub stage: Option<Stage>,
    pub location: Option<String>,
}

/// The fit score, 0–100: thesis match (sector 35, stage 25, location 10;
/// half of each when the thesis states no preference) plus up to 30 for
/// signals (their points times their confidence).
pub fn fit_score(thesis: &Thesis, company: &CompanyFacts, extraction: &Extraction) -> u8 {
    fn text_match(wanted: &[String], have: &[Option<&str>], points: f64) -> f64 {
        if wanted.is_empty() {
            return points / 2.0;
        }
        let hit = have.iter().flatten().any(|value| {
            wanted
                .iter()
                .any(|w| w.trim().eq_ignore_ascii_case(value.trim()))
        });
        if hit {
            points
        } else {
            0.0
        }
    }
    let sector = text_match(
        &thesis.sectors,
        &[company.sector.as_deref(), extraction.sector.as_deref()],
        35.0,
    );
    let stage = if thesis.stages.is_empty() {
        12.5
    } else if company.stage.is_some_and(|s| thesis.stages.contains(&s)) {
        25.0
    } else {
        0.0
    };
    let location = text_match(&thesis.locations, &[company.location.as_deref()], 10.0);
    // Each kind counts once, at its best confidence.
    let signals: f64 = SignalKind::ALL
        .iter()
        .filter_map(|kind| {
            extraction
                .signals
                .iter()
                .filter(|s| s.kind == *kind)
                .map(|s| kind.points() * s.confidence.weight())
                .max_by(f64::total_cmp)
        })
        .sum::<f64>()
        .min(30.0);
    (sector + stage + location + signals)
        .round()
        .clamp(0.0, 100.0) as u8
}

// ---------------------------------------------------------------- the job

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrichmentCommand {
    /// The caller has checked that the company is live in the actor's workspace.
    Request {
        actor: Actor,
        job_id: EnrichmentJobId,
        company_id: CompanyId,
        website: String,
    },
    /// A worker takes the job. `takeover` lets it take a job whose previous
    /// worker stopped answering (the worker decides from the lease).
    Start {
        worker: String,
        takeover: bool,
    },
    FailAttempt {
        error: String,
        /// When the worker should try again; `None` for "give up now".
        retry_in_ms: Option<u64>,
        /// What the attempt's model call cost, if it got an answer.
        usage: Usage,
    },
    Defer {
        reason: String,
    },
    Succeed {
        result: EnrichmentResult,
    },
}

crate::event_family::event_family! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    pub enum EnrichmentEvent of AGGREGATE_TYPE {
        Requested(EnrichmentRequested) = "enrichment.requested" v "1",
        Started(EnrichmentStarted) = "enrichment.started" v "1",
        AttemptFailed(EnrichmentAttemptFailed) = "enrichment.attempt_failed" v "1",
        Deferred(EnrichmentDeferred) = "enrichment.deferred" v "1",
        Succeeded(EnrichmentSucceeded) = "enrichment.succeeded" v "1",
        GivenUp(EnrichmentGivenUp) = "enrichment.given_up" v "1",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnrichmentRequested {
    pub job_id: EnrichmentJobId,
    pub company_id: CompanyId,
    pub workspace_id: WorkspaceId,
    pub requested_by: UserId,
    pub website: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnrichmentStarted {
    pub workspace_id: WorkspaceId,
    pub company_id: CompanyId,
    pub attempt: u32,
    pub worker: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnrichmentAttemptFailed {
    pub workspace_id: WorkspaceId,
    pub company_id: CompanyId,
    pub requested_by: UserId,
    pub attempt: u32,
    pub error: String,
    pub retry_in_ms: Option<u64>,
    /// A model call that answered badly still cost tokens.
    #[serde(default)]
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnrichmentDeferred {
    pub workspace_id: WorkspaceId,
    pub company_id: CompanyId,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnrichmentSucceeded {
    pub workspace_id: WorkspaceId,
    pub company_id: CompanyId,
    pub requested_by: UserId,
    pub attempt: u32,
    pub result: EnrichmentResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnrichmentGivenUp {
    pub workspace_id: WorkspaceId,
    pub company_id: CompanyId,
    pub requested_by: UserId,
    pub attempts: u32,
    pub error: String,
}

impl EnrichmentEvent {
    pub fn workspace_id(&self) -> WorkspaceId {
        match self {
            EnrichmentEvent::Requested(e) => e.workspace_id,
            EnrichmentEvent::Started(e) => e.workspace_id,
            EnrichmentEvent::AttemptFailed(e) => e.workspace_id,
            EnrichmentEvent::Deferred(e) => e.workspace_id,
            EnrichmentEvent::Succeeded(e) => e.workspace_id,
            EnrichmentEvent::GivenUp(e) => e.workspace_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrichmentError {
    #[error("enrichment job not found")]
    NotFound,
    #[error("a job with this id already exists")]
    AlreadyExists,
    /// Another job for the company is queued or running: it is the answer.
    #[error("an enrichment of this company is already queued or running")]
    AlreadyActive { existing: EnrichmentJobId },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the job is running on another worker")]
    Running,
    #[error("the job is not running")]
    NotRunning,
    #[error("the job has ended")]
    Ended,
}

/// Where a job is in its life.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Deferred,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
struct JobFacts {
    workspace_id: WorkspaceId,
    company_id: CompanyId,
    requested_by: UserId,
    website: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnrichmentJob {
    facts: Option<JobFacts>,
    state: Option<JobState>,
    attempts: u32,
}

impl EnrichmentJob {
    pub fn state(&self) -> Option<JobState> {
        self.state
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn workspace_id(&self) -> Option<WorkspaceId> {
        self.facts.as_ref().map(|f| f.workspace_id)
    }

    pub fn company_id(&self) -> Option<CompanyId> {
        self.facts.as_ref().map(|f| f.company_id)
    }

    pub fn website(&self) -> Option<&str> {
        self.facts.as_ref().map(|f| f.website.as_str())
    }

    pub fn requested_by(&self) -> Option<UserId> {
        self.facts.as_ref().map(|f| f.requested_by)
    }

    pub fn decide(
        &self,
        command: EnrichmentCommand,
    ) -> Result<Vec<EnrichmentEvent>, EnrichmentError> {
        if let EnrichmentCommand::Request {
            actor,
            job_id,
            company_id,
            website,
        } = command
        {
            if self.facts.is_some() {
                return Err(EnrichmentError::AlreadyExists);
            }
            if !actor.role.allows(Permission::WriteData) {
                return Err(EnrichmentError::Forbidden(
                    "your role may not request enrichments",
                ));
            }
            return Ok(vec![EnrichmentEvent::Requested(EnrichmentRequested {
                job_id,
                company_id,
                workspace_id: actor.workspace_id,
                requested_by: actor.user_id,
                website,
            })]);
        }
        let (Some(facts), Some(state)) = (&self.facts, self.state) else {
            return Err(EnrichmentError::NotFound);
        };
        if state.is_final() {
            return Err(EnrichmentError::Ended);
        }
        let (workspace_id, company_id) = (facts.workspace_id, facts.company_id);
        match command {
            EnrichmentCommand::Request { .. } => unreachable!("handled above"),
            EnrichmentCommand::Start { worker, takeover } => {
                if state == JobState::Running && !takeover {
                    return Err(EnrichmentError::Running);
                }
                Ok(vec![EnrichmentEvent::Started(EnrichmentStarted {
                    workspace_id,
                    company_id,
                    attempt: self.attempts + 1,
                    worker,
                })])
            }
            EnrichmentCommand::FailAttempt {
                error,
                retry_in_ms,
                usage,
            } => {
                if state != JobState::Running {
                    return Err(EnrichmentError::NotRunning);
                }
                let error = sanitised_error(&error);
                let last = retry_in_ms.is_none() || self.attempts >= MAX_ATTEMPTS;
                let mut events = vec![EnrichmentEvent::AttemptFailed(EnrichmentAttemptFailed {
                    workspace_id,
                    company_id,
                    requested_by: facts.requested_by,
                    attempt: self.attempts,
                    error: error.clone(),
                    retry_in_ms: if last { None } else { retry_in_ms },
                    usage,
                })];
                if last {
                    events.push(EnrichmentEvent::GivenUp(EnrichmentGivenUp {
                        workspace_id,
                        company_id,
                        requested_by: facts.requested_by,
                        attempts: self.attempts,
                        error,
                    }));
                }
                Ok(events)
            }
            EnrichmentCommand::Defer { reason } => {
                if state == JobState::Deferred {
                    return Ok(vec![]);
                }
                Ok(vec![EnrichmentEvent::Deferred(EnrichmentDeferred {
                    workspace_id,
                    company_id,
                    reason: sanitised_error(&reason),
                })])
            }
            EnrichmentCommand::Succeed { result } => {
                if state != JobState::Running {
                    return Err(EnrichmentError::NotRunning);
                }
                Ok(vec![EnrichmentEvent::Succeeded(EnrichmentSucceeded {
                    workspace_id,
                    company_id,
                    requested_by: facts.requested_by,
                    attempt: self.attempts,
                    result,
                })])
            }
        }
    }

    pub fn apply(&mut self, event: EnrichmentEvent) {
        match event {
            EnrichmentEvent::Requested(e) => {
                self.facts = Some(JobFacts {
                    workspace_id: e.workspace_id,
                    company_id: e.company_id,
                    requested_by: e.requested_by,
                    website: e.website,
                });
                self.state = Some(JobState::Queued);
            }
            EnrichmentEvent::Started(e) => {
                self.attempts = e.attempt;
                self.state = Some(JobState::Running);
            }
            EnrichmentEvent::AttemptFailed(_) => self.state = Some(JobState::Queued),
            EnrichmentEvent::Deferred(_) => self.state = Some(JobState::Deferred),
            EnrichmentEvent::Succeeded(_) => self.state = Some(JobState::Succeeded),
            EnrichmentEvent::GivenUp(_) => self.state = Some(JobState::Failed),
        }
    }
}

/// One line, bounded, normalised, links and markup redacted: errors end
/// up in API answers and must not carry a provider's whole response, a
/// page's content or anything that acts when shown.
pub fn sanitised_error(error: &str) -> String {
    // Errors quote providers and pages: shown, but never as they came.
    let one_line = crate::untrusted::redacted(error);
    if one_line.chars().count() > MAX_ERROR_CHARS {
        let cut: String = one_line.chars().take(MAX_ERROR_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    fn actor(role: Role) -> Actor {
        Actor {
            workspace_id: WorkspaceId(Uuid::from_u128(1)),
            user_id: UserId(Uuid::from_u128(2)),
            role,
            api_key: None,
        }
    }

    fn given(events: Vec<EnrichmentEvent>) -> EnrichmentJob {
        let mut job = EnrichmentJob::default();
        for event in events {
            job.apply(event);
        }
        job
    }

    fn requested() -> EnrichmentEvent {
        EnrichmentJob::default()
            .decide(EnrichmentCommand::Request {
                actor: actor(Role::Member),
                job_id: EnrichmentJobId(Uuid::from_u128(3)),
                company_id: CompanyId(Uuid::from_u128(4)),
                website: "acme.io".to_owned(),
            })
            .unwrap()
            .remove(0)
    }

    fn start(job: &EnrichmentJob) -> Vec<EnrichmentEvent> {
        job.decide(EnrichmentCommand::Start {
            worker: "w1".to_owned(),
            takeover: false,
        })
        .unwrap()
    }

    fn extraction() -> Extraction {
        Extraction {
            summary: "Acme builds warehouse robots.".to_owned(),
            what_it_does: "Robots that pick and pack orders.".to_owned(),
            keywords: vec![
                "robotics".to_owned(),
                "Logistics".to_owned(),
                "robotics".to_owned(),
            ],
            sector: Some("Robotics".to_owned()),
            signals: vec![Signal {
                kind: SignalKind::Hiring,
                evidence: "We are hiring engineers".to_owned(),
                confidence: Confidence::High,
            }],
            confidence: Confidence::Medium,
        }
    }

    #[test]
    fn a_viewer_may_not_request_and_a_member_queues_a_job() {
        let refused = EnrichmentJob::default().decide(EnrichmentCommand::Request {
            actor: actor(Role::Viewer),
            job_id: EnrichmentJobId(Uuid::from_u128(3)),
            company_id: CompanyId(Uuid::from_u128(4)),
            website: "acme.io".to_owned(),
        });
        assert!(matches!(refused, Err(EnrichmentError::Forbidden(_))));
        assert_eq!(given(vec![requested()]).state(), Some(JobState::Queued));
    }

    #[test]
    fn a_running_job_cannot_be_started_twice_unless_taken_over() {
        let job = given(vec![requested()]);
        let job = given(vec![requested(), start(&job).remove(0)]);
        assert_eq!(job.state(), Some(JobState::Running));
        assert_eq!(
            job.decide(EnrichmentCommand::Start {
                worker: "w2".to_owned(),
                takeover: false
            }),
            Err(EnrichmentError::Running)
        );
        let taken = job
            .decide(EnrichmentCommand::Start {
                worker: "w2".to_owned(),
                takeover: true,
            })
            .unwrap();
        assert!(matches!(&taken[0], EnrichmentEvent::Started(e) if e.attempt == 2));
    }

    #[test]
    fn the_third_failed_attempt_gives_up() {
        let mut history = vec![requested()];
        for attempt in 1..=MAX_ATTEMPTS {
            let job = given(history.clone());
            history.extend(start(&job));
            let job = given(history.clone());
            let failed = job
                .decide(EnrichmentCommand::FailAttempt {
                    error: "HTTP 503\nfrom provider".to_owned(),
                    retry_in_ms: Some(1000),
                    usage: Usage::default(),
                })
                .unwrap();
            if attempt < MAX_ATTEMPTS {
                assert_eq!(failed.len(), 1);
                assert!(matches!(&failed[0], EnrichmentEvent::AttemptFailed(e)
                    if e.attempt == attempt && e.retry_in_ms == Some(1000) && e.error == "HTTP 503 from provider"));
            } else {
                assert!(
                    matches!(&failed[1], EnrichmentEvent::GivenUp(e) if e.attempts == MAX_ATTEMPTS)
                );
            }
            history.extend(failed);
        }
        let job = given(history);
        assert_eq!(job.state(), Some(JobState::Failed));
        assert_eq!(
            job.decide(EnrichmentCommand::Defer {
                reason: "x".to_owned()
            }),
            Err(EnrichmentError::Ended)
        );
    }

    #[test]
    fn a_deferred_job_starts_again_and_success_only_comes_from_a_running_job() {
        let job = given(vec![requested()]);
        let deferred = job
            .decide(EnrichmentCommand::Defer {
                reason: "circuit open".to_owned(),
            })
            .unwrap();
        let job = given(vec![requested(), deferred[0].clone()]);
        assert_eq!(job.state(), Some(JobState::Deferred));
        let result = EnrichmentResult {
            extraction: extraction().validated().unwrap(),
            score: 50,
            source: EnrichmentSource::Heuristic {
                version: "1".to_owned(),
            },
            cached: false,
            usage: Usage::default(),
            content_hash: "abc".to_owned(),
        };
        assert_eq!(
            job.decide(EnrichmentCommand::Succeed {
                result: result.clone()
            }),
            Err(EnrichmentError::NotRunning)
        );
        let started = start(&job);
        let job = given(vec![requested(), deferred[0].clone(), started[0].clone()]);
        let done = job.decide(EnrichmentCommand::Succeed { result }).unwrap();
        assert!(matches!(&done[0], EnrichmentEvent::Succeeded(e) if e.attempt == 1));
    }

    #[test]
    fn extractions_with_links_markup_or_oversize_fields_are_refused() {
        let ok = extraction().validated().unwrap();
        assert_eq!(ok.keywords, vec!["robotics", "logistics"]);
        type Mutation = Box<dyn Fn(&mut Extraction)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "summary",
                Box::new(|e| e.summary = "Visit https://evil.example now".to_owned()),
            ),
            (
                "summary",
                Box::new(|e| e.summary = "see www.evil.example".to_owned()),
            ),
            (
                "what_it_does",
                Box::new(|e| e.what_it_does = "<img src=x onerror=alert(1)>".to_owned()),
            ),
            (
                "what_it_does",
                Box::new(|e| e.what_it_does = "[click](evil)".to_owned()),
            ),
            (
                "summary",
                Box::new(|e| e.summary = "x".repeat(MAX_SUMMARY_CHARS + 1)),
            ),
            ("summary", Box::new(|e| e.summary = "   ".to_owned())),
            (
                "keywords",
                Box::new(|e| e.keywords = vec!["k".to_owned(); MAX_KEYWORDS + 1]),
            ),
            (
                "keywords[0]",
                Box::new(|e| e.keywords = vec!["</script>".to_owned()]),
            ),
            (
                "signals[0].evidence",
                Box::new(|e| e.signals[0].evidence = "javascript:alert(1)".to_owned()),
            ),
        ];
        for (field, mutate) in cases {
            let mut bad = extraction();
            mutate(&mut bad);
            assert_eq!(bad.validated().unwrap_err().field, field);
        }
        // "a < b" is prose, not markup.
        let mut prose = extraction();
        prose.summary = "Costs drop when volume < capacity".to_owned();
        assert!(prose.validated().is_ok());
    }

    #[test]
    fn the_fit_score_follows_the_thesis_and_the_signals() {
        let thesis = Thesis {
            sectors: vec!["robotics".to_owned()],
            stages: vec![Stage::Seed],
            locations: vec!["Berlin".to_owned()],
        };
        let facts = CompanyFacts {
            sector: None,
            stage: Some(Stage::Seed),
            location: Some("berlin".to_owned()),
        };
        let e = extraction();
        // sector via the extraction 35 + stage 25 + location 10 + hiring 4.
        assert_eq!(fit_score(&thesis, &facts, &e), 74);
        let elsewhere = CompanyFacts {
            location: Some("Lisbon".to_owned()),
            stage: Some(Stage::SeriesB),
            ..facts.clone()
        };
        assert_eq!(fit_score(&thesis, &elsewhere, &e), 39);
        // No thesis: half credit for each part, so signals still rank.
        assert_eq!(fit_score(&Thesis::default(), &facts, &e), 39);
        // Signals are capped at 30 and a kind counts once.
        let mut loud = e.clone();
        loud.signals = SignalKind::ALL
            .iter()
            .flat_map(|kind| {
                [Confidence::Low, Confidence::High].map(|confidence| Signal {
                    kind: *kind,
                    evidence: "evidence".to_owned(),
                    confidence,
                })
            })
            .collect();
        assert_eq!(fit_score(&thesis, &facts, &loud), 100);
        assert_eq!(fit_score(&thesis, &elsewhere, &loud), 65);
        assert_eq!(
            fit_score(&thesis, &facts, &e),
            fit_score(&thesis, &facts, &e)
        );
    }

    #[test]
    fn errors_are_one_bounded_line() {
        let long = format!("boom\n{}", "x".repeat(1000));
        let clean = sanitised_error(&long);
        assert!(!clean.contains('\n'));
        assert_eq!(clean.chars().count(), MAX_ERROR_CHARS);
    }
}
