//! `redrive-dlq DLQ_URL WORK_QUEUE_URL`: moves every message of the dead-letter queue back to
//! the work queue (see `aws_adapters::redrive`). Credentials, region and endpoint come from the
//! standard AWS environment; `scripts/redrive-dlq` sets them for the local stack.

use aws_adapters::redrive::redrive;
use aws_adapters::startup::aws_config;
use std::process::ExitCode;
use tasks_core::error::Chain;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dlq, queue] = args.as_slice() else {
        eprintln!("usage: redrive-dlq DEAD_LETTER_QUEUE_URL WORK_QUEUE_URL");
        return ExitCode::FAILURE;
    };
    let sqs = aws_sdk_sqs::Client::new(&aws_config().await);
    match redrive(&sqs, dlq, queue).await {
        Ok(moved) => {
            println!("moved {moved} message(s) from {dlq} to {queue}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("redrive-dlq: {}", Chain(&e));
            ExitCode::FAILURE
        }
    }
}
