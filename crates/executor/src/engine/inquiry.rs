//! The gateway's status inquiry delivers final outcomes to their orders through this adapter.

use channels::inquiry::DeliveryError;

use super::*;

/// Delivers status inquiry's final outcomes to the orders that own them.
pub struct InquiryOwnerAdapter(pub Arc<Executor>);

impl InquiryOwner for InquiryOwnerAdapter {
    fn deliver<'a>(
        &'a self,
        task: &'a InquiryTask,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let order = OrderId::new(task.owner.as_str())
                .map_err(|_| DeliveryError::NoSuchOwner(task.owner.clone()))?;
            self.0
                .on_channel_answer(&order, task.channel.clone(), outcome.clone())
                .await
                .map(|_| ())
                .map_err(|error| DeliveryError::Owner(Box::new(error)))
        })
    }
}
