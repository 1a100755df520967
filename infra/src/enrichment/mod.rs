//! The enrichment pipeline's adapters: fetching a website safely, reading
//! its visible text, the built-in deterministic enricher, and the worker
//! that runs jobs.

pub mod admission;
pub mod breaker;
pub mod fetch;
pub mod heuristic;
pub mod model;
pub mod page;
pub mod worker;

/// What the built-in heuristic makes of `html`, the page of `company`,
/// scored against `thesis`: the result a worker without a model records
/// after fetching the page. The demo seeds its sample with it, over pages
/// it ships.
pub fn heuristic_result(
    company: &vcintel_domain::company::CompanyDetails,
    html: &str,
    thesis: &vcintel_domain::enrichment::Thesis,
) -> Result<vcintel_domain::enrichment::EnrichmentResult, String> {
    use vcintel_domain::enrichment::{
        fit_score, CompanyFacts, EnrichmentResult, EnrichmentSource, Usage,
    };
    let (page, content_hash) = worker::read_page(html);
    let extraction = heuristic::extract(&company.name, &page)
        .validated()
        .map_err(|invalid| format!("the extraction was invalid: {invalid}"))?;
    let facts = CompanyFacts {
        sector: company.sector.clone(),
        stage: company.stage,
        location: company.location.clone(),
    };
    Ok(EnrichmentResult {
        score: fit_score(thesis, &facts, &extraction),
        extraction,
        source: EnrichmentSource::Heuristic {
            version: heuristic::HEURISTIC_VERSION.to_owned(),
        },
        cached: false,
        usage: Usage::default(),
        content_hash,
    })
}
