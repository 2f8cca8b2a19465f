using Xunit.Abstractions;
using Xunit.Sdk;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>The position of a test in a class whose tests are the successive steps of one scenario.</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class StepAttribute(int number) : Attribute
{
    public int Number { get; } = number;
}

/// <summary>Runs a class's tests in the order of their <see cref="StepAttribute"/>.</summary>
public sealed class StepOrderer : ITestCaseOrderer
{
    public const string TypeName = "Talki.Samples.Browser.EndToEndTests.StepOrderer";

    public const string AssemblyName = "Talki.Samples.Browser.EndToEndTests";

    public IEnumerable<TTestCase> OrderTestCases<TTestCase>(IEnumerable<TTestCase> testCases)
        where TTestCase : ITestCase =>
        testCases.OrderBy(t => Step(t)).ThenBy(t => t.TestMethod.Method.Name, StringComparer.Ordinal);

    private static int Step(ITestCase testCase) =>
        testCase.TestMethod.Method.GetCustomAttributes(typeof(StepAttribute).AssemblyQualifiedName!)
            .Select(a => a.GetConstructorArguments().OfType<int>().FirstOrDefault())
            .DefaultIfEmpty(int.MaxValue)
            .First();
}
