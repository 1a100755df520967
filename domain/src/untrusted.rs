//! Text from outside the product (a model's answer, a provider's error, a
//! page): how it is normalised before anything judges it, and what in it
//! counts as a link or markup, which such text may never carry.
//!
//! Judging raw text is judging what it looks like to a byte comparison;
//! readers see it rendered. So text is first brought to what a reader sees:
//! NFKC folds fullwidth and other compatibility forms to their plain
//! letters (`ｅｖｉｌ．ｅｘａｍｐｌｅ` is `evil.example`), and characters a
//! reader does not see are dropped (zero-width spaces that split a URL,
//! bidi controls that reverse it, Unicode tag characters that hide text).

use crate::validation::is_deceptive;
use regex::Regex;
use std::sync::LazyLock;
use unicode_normalization::UnicodeNormalization;

/// `text` as a reader sees it: NFKC, without invisible, bidi-control or
/// tag characters, whitespace runs (control characters included) as one
/// space, trimmed.
pub fn normalised(text: &str) -> String {
    let visible: String = text
        .nfkc()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| !is_invisible(*c))
        .collect();
    visible.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Characters that render as nothing: format characters a reader cannot
/// see (zero-width spaces and joiners, bidi controls, the byte-order mark,
/// the soft hyphen, Mongolian vowel separator, tag characters).
fn is_invisible(c: char) -> bool {
    (is_deceptive(c) && !c.is_control())
        || matches!(
            c,
            '\u{00AD}' | '\u{034F}' | '\u{180E}' | '\u{200C}' | '\u{200D}' | '\u{2061}'
                ..='\u{2064}'
        )
}

/// Top-level domains that make a bare `name.tld` a link in most renderers
/// (auto-linking); rarer ones are refused only with a path, port, scheme
/// or `www.`, so `Node.js` and `ASP.NET`-style names stay words.
const LINKED_TLDS: &str = "com|org|io|co|ai|app|dev|xyz|info|biz|me|ly|gg|sh|to|tv|us|uk|de|fr|ru|cn|example|test|local|online|site|link|click|top";

static LINK: LazyLock<Regex> = LazyLock::new(|| {
    let host = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}";
    let patterns = [
        // A scheme (`https://`, `javascript:`, `data:`, `mailto:`, …).
        r"\b[a-z][a-z0-9+.-]{1,20}:/{1,3}\S*".to_owned(),
        r"\b(?:javascript|data|mailto|tel|file|vbscript):".to_owned(),
        // Protocol-relative: `//evil.example`.
        format!(r"(?:^|[^:/])//{host}\S*"),
        // A host with a path or a port: `acme-login.example/reset`, `evil.example:8080`.
        format!(r"\b{host}(?:/|:\d)\S*"),
        // `www.` anything.
        r"\bwww\.\S*".to_owned(),
        // An e-mail address.
        format!(r"[a-z0-9._%+-]+@{host}"),
        // A bare host on a top-level domain renderers link.
        format!(r"\b(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+(?:{LINKED_TLDS})\b"),
    ];
    Regex::new(&format!("(?i){}", patterns.join("|"))).expect("the link pattern compiles")
});

static MARKUP: LazyLock<Regex> = LazyLock::new(|| {
    let patterns = [
        // A tag, a comment, a doctype.
        r"<[a-z/!?][^>]{0,200}>?",
        // An entity: escaped markup renders as markup somewhere.
        r"&(?:#[0-9]+|#x[0-9a-f]+|[a-z][a-z0-9]{1,31});",
        // Markdown links and images, emphasis, code, strikethrough, headings.
        r"\]\(",
        r"!\[",
        r"\*\*|__|~~|`",
        r"(?:^|\s)[*_][^\s*_][^*_]*[*_](?:\s|$|[.,;:!?])",
        r"^#{1,6}\s",
    ];
    Regex::new(&format!("(?i){}", patterns.join("|"))).expect("the markup pattern compiles")
});

/// Whether `text` (after [`normalised`]) carries a link (with or without a
/// scheme, protocol-relative, a host with a path or port, an e-mail
/// address, `www.`) or markup (tags, entities, markdown).
pub fn contains_markup_or_link(text: &str) -> bool {
    let text = normalised(text);
    LINK.is_match(&text) || MARKUP.is_match(&text)
}

/// `text` normalised, with every link and piece of markup replaced by
/// `[removed]`: for text that must be shown anyway (a provider's or a
/// page's error in a job), never as it came.
pub fn redacted(text: &str) -> String {
    let text = normalised(text);
    let text = LINK.replace_all(&text, "[removed]");
    MARKUP.replace_all(&text, "[removed]").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eleven spellings the trust review got stored, each refused.
    #[test]
    fn links_and_markup_are_found_however_they_are_spelled() {
        for hostile in [
            "Reset at acme-login.example/reset today",
            "See //evil.example for more",
            "Runs on evil.example:8080",
            "Write to ceo@evil.example",
            "Uses &lt;script&gt;alert(1)&lt;/script&gt;",
            "Visit evil\u{200B}.example/\u{200B}login",
            "Visit ｅｖｉｌ．ｅｘａｍｐｌｅ／ｌｏｇｉｎ",
            "The **best** platform",
            "A \u{202E}elpmaxe.live//:sptth\u{202C} tool",
            "Hidden\u{E0041}\u{E0042} https://evil.example",
            "Go to www.evil-example.net now",
            "https://evil.example",
            "<b>bold</b>",
            "[click](https://x.io)",
            "javascript:alert(1)",
            "Check acme.io",
            "It is _really_ good",
        ] {
            assert!(contains_markup_or_link(hostile), "{hostile:?}");
        }
    }

    #[test]
    fn ordinary_descriptions_pass() {
        for fine in [
            "An API platform for document pipelines, built on Node.js and Rust.",
            "Series A; 40 employees; offices in Berlin and New York.",
            "Revenue grew 3.5x in 2024 (ARR: $4.2M).",
            "Uses ASP.NET and C# for its back end.",
            "Robotics & automation for warehouses",
            "Pay-as-you-go pricing, 99.9% uptime.",
        ] {
            assert!(!contains_markup_or_link(fine), "{fine:?}");
        }
    }

    #[test]
    fn redacting_keeps_the_message_and_drops_what_could_act() {
        assert_eq!(
            redacted("fetch failed: <script>x</script> see https://evil.example/\u{200B}a"),
            "fetch failed: [removed]x[removed] see [removed]"
        );
        assert_eq!(
            redacted("HTTP 503 from the provider"),
            "HTTP 503 from the provider"
        );
    }

    #[test]
    fn normalising_folds_compatibility_forms_and_drops_what_nobody_sees() {
        assert_eq!(normalised("ｅｖｉｌ．ｅｘａｍｐｌｅ"), "evil.example");
        assert_eq!(normalised("ev\u{200B}il\u{202E} \u{E0041}x"), "evil x");
        assert_eq!(normalised("  two\n\tlines  "), "two lines");
        assert_eq!(normalised("naïve café"), "naïve café");
    }
}
