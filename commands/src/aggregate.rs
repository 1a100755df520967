//! cqrs-es adapters for the domain aggregates. The domain stays free of the
//! framework (which needs tokio); these newtypes are the only glue.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use vcintel_domain::company::{
    Company, CompanyCommand, CompanyError, CompanyEvent, AGGREGATE_TYPE,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CompanyAggregate(pub Company);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CompanyEventRecord(pub CompanyEvent);

impl DomainEvent for CompanyEventRecord {
    fn event_type(&self) -> String {
        self.0.event_type().to_owned()
    }

    fn event_version(&self) -> String {
        self.0.event_version().to_owned()
    }
}

impl Aggregate for CompanyAggregate {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = CompanyCommand;
    type Event = CompanyEventRecord;
    type Error = CompanyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.0.decide(command)? {
            sink.write(CompanyEventRecord(event), self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.0.apply(event.0);
    }
}
