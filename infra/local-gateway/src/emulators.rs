//! SDK clients for the emulators (DynamoDB Local, its streams, moto's SQS and Secrets
//! Manager), with fixed fake credentials: never a real account.

/// The SDK configuration for the emulators: fixed fake credentials, never a real account.
async fn emulator_config() -> aws_config::SdkConfig {
    let creds =
        aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "local-gateway");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .load()
        .await
}

/// SDK clients for the emulators.
pub async fn emulator_clients(
    dynamodb: &str,
    sqs: &str,
) -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    let base = emulator_config().await;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&base)
            .endpoint_url(dynamodb)
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&base)
            .endpoint_url(sqs)
            .build(),
    );
    (ddb, sqs)
}

/// A Secrets Manager client for moto (which plays every service on one endpoint).
pub async fn secrets_client(moto: &str) -> aws_sdk_secretsmanager::Client {
    let base = emulator_config().await;
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&base)
            .endpoint_url(moto)
            .build(),
    )
}

/// A DynamoDB Streams client for DynamoDB Local (which serves streams on its own endpoint).
pub async fn streams_client(dynamodb: &str) -> aws_sdk_dynamodbstreams::Client {
    let base = emulator_config().await;
    aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&base)
            .endpoint_url(dynamodb)
            .build(),
    )
}
