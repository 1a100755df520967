//! The parts of the service a process can run (`vcintel serve --only …`).

/// A part of the service that can run alone (`vcintel serve --only …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The HTTP API.
    Api,
    /// The event store → JetStream relay.
    Relay,
    /// The projection workers that build read models.
    Projector,
    /// The enrichment worker.
    Enricher,
    /// The mailer: sends the verification mail the events ask for.
    Mailer,
}

impl Component {
    pub const ALL: [Component; 5] = [
        Component::Api,
        Component::Relay,
        Component::Projector,
        Component::Enricher,
        Component::Mailer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Api => "api",
            Component::Relay => "relay",
            Component::Projector => "projector",
            Component::Enricher => "enricher",
            Component::Mailer => "mailer",
        }
    }
}
