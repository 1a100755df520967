//! The built-in enricher: deterministic keyword, sector and signal
//! extraction from a page's visible text. It serves when no model is
//! configured, so the product works offline, and its results say so
//! (`source: heuristic`, confidence low).

use super::page::{truncate_chars, PageText};
use vcintel_domain::enrichment::{
    contains_markup_or_link, Confidence, Extraction, Signal, SignalKind, MAX_EVIDENCE_CHARS,
    MAX_SUMMARY_CHARS, MAX_WHAT_IT_DOES_CHARS,
};

/// Bumped whenever the rules change, so cached results are not reused
/// across versions.
pub const HEURISTIC_VERSION: &str = "heuristic-1";

const KEYWORDS: usize = 8;

const STOPWORDS: &[&str] = &[
    "about", "above", "after", "again", "all", "also", "and", "any", "are", "because", "been",
    "before", "being", "below", "between", "both", "but", "can", "cannot", "could", "did", "does",
    "doing", "down", "during", "each", "every", "few", "for", "from", "further", "get", "had",
    "has", "have", "having", "her", "here", "hers", "him", "his", "how", "into", "its", "itself",
    "just", "more", "most", "much", "must", "need", "not", "now", "off", "once", "only", "other",
    "our", "ours", "out", "over", "own", "same", "she", "should", "some", "such", "than", "that",
    "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "too",
    "under", "until", "very", "was", "were", "what", "when", "where", "which", "while", "who",
    "whom", "why", "will", "with", "would", "you", "your", "yours", "we're", "it's", "you're",
    "home", "contact", "menu", "cookie", "cookies", "privacy", "policy", "terms", "login", "sign",
    "learn", "read", "click", "here", "today", "make", "made", "new", "use", "using", "like",
    "one", "two", "way", "many", "well", "team", "company", "inc", "ltd", "gmbh",
];

/// Sectors and the words that suggest them.
const SECTORS: &[(&str, &[&str])] = &[
    (
        "Fintech",
        &[
            "payments",
            "payment",
            "banking",
            "bank",
            "lending",
            "fintech",
            "invoices",
            "invoice",
            "credit",
            "finance",
            "financial",
            "card",
            "cards",
            "accounting",
        ],
    ),
    (
        "Healthcare",
        &[
            "health",
            "healthcare",
            "patients",
            "patient",
            "clinical",
            "medical",
            "clinic",
            "clinics",
            "hospital",
            "hospitals",
            "care",
            "doctors",
        ],
    ),
    (
        "Biotech",
        &[
            "biotech",
            "drug",
            "drugs",
            "therapeutics",
            "genomics",
            "protein",
            "proteins",
            "molecules",
            "biology",
            "lab",
        ],
    ),
    (
        "Climate",
        &[
            "climate",
            "carbon",
            "energy",
            "solar",
            "emissions",
            "battery",
            "batteries",
            "grid",
            "renewable",
            "decarbonise",
            "decarbonize",
        ],
    ),
    (
        "AI infrastructure",
        &[
            "ai",
            "models",
            "model",
            "inference",
            "llm",
            "llms",
            "gpu",
            "gpus",
            "training",
            "machine",
            "learning",
            "agents",
        ],
    ),
    (
        "Developer tools",
        &[
            "developers",
            "developer",
            "api",
            "apis",
            "sdk",
            "code",
            "deploy",
            "devops",
            "cli",
            "engineers",
            "debugging",
        ],
    ),
    (
        "Logistics",
        &[
            "logistics",
            "shipping",
            "freight",
            "warehouse",
            "warehouses",
            "delivery",
            "deliveries",
            "supply",
            "fleet",
            "carriers",
        ],
    ),
    (
        "Security",
        &[
            "security",
            "threat",
            "threats",
            "identity",
            "vulnerability",
            "vulnerabilities",
            "encryption",
            "attacks",
            "zero-trust",
        ],
    ),
    (
        "Robotics",
        &[
            "robot",
            "robots",
            "robotics",
            "automation",
            "autonomous",
            "drones",
            "arms",
        ],
    ),
    (
        "Consumer",
        &[
            "shoppers",
            "consumers",
            "fashion",
            "fitness",
            "families",
            "recipes",
            "travel",
            "gaming",
        ],
    ),
];

/// Phrases that evidence each signal.
const SIGNALS: &[(SignalKind, &[&str])] = &[
    (
        SignalKind::Hiring,
        &[
            "we're hiring",
            "we are hiring",
            "join our team",
            "open positions",
            "open roles",
            "careers",
        ],
    ),
    (
        SignalKind::Funding,
        &[
            "raised",
            "series a",
            "series b",
            "seed round",
            "funding round",
            "backed by",
        ],
    ),
    (
        SignalKind::Revenue,
        &["revenue", "arr", "paying customers", "profitable"],
    ),
    (
        SignalKind::EnterpriseCustomers,
        &["enterprise", "fortune 500", "trusted by"],
    ),
    (
        SignalKind::ProductLaunch,
        &["launched", "introducing", "now available", "just released"],
    ),
    (
        SignalKind::Partnerships,
        &["partnership", "partnered", "in partnership"],
    ),
    (
        SignalKind::OpenSource,
        &["open source", "open-source", "github"],
    ),
    (
        SignalKind::Compliance,
        &["soc 2", "iso 27001", "gdpr", "hipaa"],
    ),
];

/// The deterministic extraction of `page` for a company called `name`.
pub fn extract(name: &str, page: &PageText) -> Extraction {
    let text = format!("{} {} {}", page.title, page.description, page.body);
    let sentences = sentences(&page.body);
    let words = words_of(&text);

    let name_words: Vec<String> = words_of(name);
    let mut counts: Vec<(String, usize)> = Vec::new();
    for word in &words {
        if word.len() < 4 || STOPWORDS.contains(&word.as_str()) || name_words.contains(word) {
            continue;
        }
        match counts.iter_mut().find(|(w, _)| w == word) {
            Some((_, n)) => *n += 1,
            None => counts.push((word.clone(), 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let keywords: Vec<String> = counts.into_iter().take(KEYWORDS).map(|(w, _)| w).collect();

    let sector = SECTORS
        .iter()
        .map(|(sector, cues)| {
            let hits = words.iter().filter(|w| cues.contains(&w.as_str())).count();
            (*sector, hits)
        })
        .filter(|(_, hits)| *hits >= 2)
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(sector, _)| sector.to_owned());

    let clean = |s: &str| !contains_markup_or_link(s);
    let description = Some(page.description.as_str()).filter(|d| d.len() >= 20 && clean(d));
    let summary = description
        .map(str::to_owned)
        .or_else(|| {
            let first: Vec<&str> = sentences
                .iter()
                .copied()
                .filter(|s| clean(s))
                .take(2)
                .collect();
            (!first.is_empty()).then(|| first.join(" "))
        })
        .or_else(|| Some(page.title.clone()).filter(|t| !t.is_empty() && clean(t)))
        .unwrap_or_else(|| format!("{name}: no description found on the website."));
    let what_it_does = sentences
        .iter()
        .copied()
        .filter(|s| clean(s))
        .find(|s| {
            let lower = s.to_lowercase();
            [
                "we build", "we help", "we make", "helps", "platform", "provides", "lets you",
                "enables",
            ]
            .iter()
            .any(|cue| lower.contains(cue))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| match &sector {
            Some(sector) => format!("A {sector} company (from the words on its website)."),
            None => "Not stated clearly on the website.".to_owned(),
        });

    let lower_sentences: Vec<String> = sentences.iter().map(|s| s.to_lowercase()).collect();
    let signals = SIGNALS
        .iter()
        .filter_map(|(kind, phrases)| {
            let evidence: Vec<usize> = lower_sentences
                .iter()
                .enumerate()
                .filter(|(_, s)| phrases.iter().any(|p| contains_phrase(s, p)))
                .map(|(i, _)| i)
                .collect();
            let first = *evidence.first()?;
            let sentence = sentences[first];
            let evidence_text = if clean(sentence) {
                truncate_chars(sentence, MAX_EVIDENCE_CHARS)
            } else {
                phrases
                    .iter()
                    .find(|p| contains_phrase(&lower_sentences[first], p))
                    .map(|p| (*p).to_owned())
                    .unwrap_or_default()
            };
            Some(Signal {
                kind: *kind,
                evidence: evidence_text,
                confidence: if evidence.len() >= 2 {
                    Confidence::Medium
                } else {
                    Confidence::Low
                },
            })
        })
        .collect();

    Extraction {
        summary: truncate_chars(&summary, MAX_SUMMARY_CHARS),
        what_it_does: truncate_chars(&what_it_does, MAX_WHAT_IT_DOES_CHARS),
        keywords,
        sector,
        signals,
        confidence: Confidence::Low,
    }
}

fn contains_phrase(haystack: &str, phrase: &str) -> bool {
    haystack.match_indices(phrase).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

fn sentences(text: &str) -> Vec<&str> {
    text.split_inclusive(['.', '!', '?'])
        .map(str::trim)
        .filter(|s| s.split_whitespace().count() >= 3)
        .collect()
}

fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .map(|w| w.trim_matches(|c| c == '\'' || c == '-').to_lowercase())
        .filter(|w| !w.is_empty() && w.chars().any(char::is_alphabetic))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str) -> PageText {
        PageText {
            title: "Acme Robotics".to_owned(),
            description: String::new(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn keywords_sector_and_signals_come_from_the_text_and_validate() {
        let extraction = extract(
            "Acme Robotics",
            &page(
                "Acme builds warehouse robots and robotic arms. Our platform helps warehouses automate picking with robots. \
                 We are hiring engineers in Berlin. Join our team! We raised a seed round backed by Example Ventures. \
                 Trusted by enterprise logistics teams.",
            ),
        );
        assert_eq!(extraction.sector.as_deref(), Some("Robotics"));
        assert!(
            extraction.keywords.contains(&"robots".to_owned()),
            "{:?}",
            extraction.keywords
        );
        assert!(
            !extraction.keywords.contains(&"acme".to_owned()),
            "the name is not a keyword"
        );
        let kinds: Vec<SignalKind> = extraction.signals.iter().map(|s| s.kind).collect();
        assert!(kinds.contains(&SignalKind::Hiring) && kinds.contains(&SignalKind::Funding));
        let hiring = extraction
            .signals
            .iter()
            .find(|s| s.kind == SignalKind::Hiring)
            .unwrap();
        assert_eq!(
            hiring.confidence,
            Confidence::Medium,
            "two sentences evidence it"
        );
        assert!(extraction.what_it_does.contains("platform helps"));
        assert_eq!(extraction.confidence, Confidence::Low);
        assert_eq!(
            extraction.clone().validated().unwrap().summary,
            extraction.summary
        );
        // Deterministic.
        assert_eq!(extraction, extract("Acme Robotics", &page(
            "Acme builds warehouse robots and robotic arms. Our platform helps warehouses automate picking with robots. \
             We are hiring engineers in Berlin. Join our team! We raised a seed round backed by Example Ventures. \
             Trusted by enterprise logistics teams.")));
    }

    #[test]
    fn links_in_the_page_never_reach_the_result_and_an_empty_page_still_validates() {
        let extraction = extract(
            "Linky",
            &page("Visit https://evil.example for details and more. We are hiring at www.jobs.example today."),
        );
        let validated = extraction.validated().unwrap();
        assert!(!contains_markup_or_link(&validated.summary));
        for signal in &validated.signals {
            assert!(!contains_markup_or_link(&signal.evidence));
        }
        let empty = extract("Blank", &PageText::default()).validated().unwrap();
        assert!(empty.summary.contains("no description"));
    }

    #[test]
    fn phrases_match_whole_words_only() {
        assert!(contains_phrase("we have $2m arr now", "arr"));
        assert!(!contains_phrase("the arrival of spring", "arr"));
    }
}
