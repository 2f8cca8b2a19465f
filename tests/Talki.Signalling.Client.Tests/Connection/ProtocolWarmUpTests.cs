using Talki.Signalling.Client.Connection;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests.Connection;

public sealed class ProtocolWarmUpTests
{
    [Fact]
    public async Task RunAsync_EveryMadeUpFrame_ReadsBackAsTheMessageItWroteWithItsDescriptionIntact()
    {
        var read = await ProtocolWarmUp.RunAsync();

        Assert.Equal(
            ["WelcomeMessage", "SignalRelayMessage", "SignalRelayMessage", "AdmissionRequestMessage", "PeerLeftMessage", "PongMessage",
             "SignalsMessage", "SignalMessage", "SignalMessage", "AdmitMessage"],
            read.Select(m => m.GetType().Name));

        // The parts of a link-up's frames the warm-up is for: a plan, ICE servers, a description with its line breaks escaped
        // and read back, candidates, and a batch of offers.
        var welcome = (WelcomeMessage)read[0];
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.True(Assert.Single(welcome.Links!).Offerer);
        Assert.Equal(2, welcome.IceServers.Count);
        var answer = (SignalRelayMessage)read[1];
        Assert.Equal(SdpType.Answer, answer.Description!.Type);
        Assert.Equal(ProtocolWarmUp.Description, answer.Description.Sdp);
        Assert.Equal(2, answer.Candidates!.Count);
        Assert.NotNull(((SignalRelayMessage)read[2]).Link);
        var batch = (SignalsMessage)read[6];
        Assert.Equal(2, batch.Signals.Count);
        Assert.All(batch.Signals, s => Assert.Equal(ProtocolWarmUp.Description, s.Description!.Sdp));
    }

    [Fact]
    public void RunAsync_YieldsBeforeEveryStep_SoAFrameArrivingMeanwhileWaitsForOneStepAtMost()
    {
        // The browser runs the warm-up on the thread that handles the socket's frames: it must give the thread back between
        // frames. A context that queues what is posted to it stands for the browser's event loop.
        var previous = SynchronizationContext.Current;
        var loop = new QueuedContext();
        SynchronizationContext.SetSynchronizationContext(loop);
        try
        {
            var run = ProtocolWarmUp.RunAsync();
            var steps = 0;
            while (!run.IsCompleted)
            {
                Assert.True(loop.Items.TryDequeue(out var item), "the warm-up waits on something other than its own steps");
                Assert.Empty(loop.Items); // one step queued at a time: another frame posted now runs before the next step
                item.Callback(item.State);
                steps++;
            }

            Assert.True(run.IsCompletedSuccessfully);
            Assert.Equal(11, steps); // ten frames and the description
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }
    }

    private sealed class QueuedContext : SynchronizationContext
    {
        public Queue<(SendOrPostCallback Callback, object? State)> Items { get; } = new();

        public override void Post(SendOrPostCallback d, object? state) => Items.Enqueue((d, state));
    }
}
