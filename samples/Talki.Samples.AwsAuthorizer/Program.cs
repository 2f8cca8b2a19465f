using Microsoft.Extensions.Hosting;
using Talki.Samples.AwsAuthorizer;

// The AWS stack's $connect authorizer function (samples/Talki.Samples.AwsCdk): a Lambda custom runtime that takes API
// Gateway's REQUEST authorizer events from the Lambda runtime API (AWS_LAMBDA_RUNTIME_API) and answers Allow, with the
// member's context, for a valid one-time ticket, and Deny for anything else. No web server and no Lambda Web Adapter: a
// cold start builds the signalling services, the DynamoDB client and nothing else.
using var host = AuthorizerFunction.Build(args);
host.Run();
