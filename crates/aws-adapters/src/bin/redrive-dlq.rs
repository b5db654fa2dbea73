//! `redrive-dlq DLQ_URL WORK_QUEUE_URL`: moves every message of the dead-letter queue back to
//! the work queue (see `aws_adapters::redrive`). Credentials, region and endpoint come from the
//! standard AWS environment; `scripts/redrive-dlq` sets them for the local stack.

use aws_adapters::redrive::redrive;
use aws_adapters::startup::aws_config;

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dlq, queue] = args.as_slice() else {
        return Err("usage: redrive-dlq DEAD_LETTER_QUEUE_URL WORK_QUEUE_URL".to_owned());
    };
    let sqs = aws_sdk_sqs::Client::new(&aws_config().await);
    let moved = redrive(&sqs, dlq, queue).await?;
    println!("moved {moved} message(s) from {dlq} to {queue}");
    Ok(())
}
