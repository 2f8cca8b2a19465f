using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Talki.Signalling.Emulator.Deployment;

/// <summary>One statement of an IAM policy, its intrinsics already resolved.</summary>
/// <param name="Effect"><c>Allow</c> or <c>Deny</c>.</param>
/// <param name="Actions">The <c>Action</c> patterns (empty when the statement uses <c>NotAction</c>).</param>
/// <param name="NotActions">The <c>NotAction</c> patterns.</param>
/// <param name="Resources">The <c>Resource</c> patterns (empty when the statement uses <c>NotResource</c>).</param>
/// <param name="NotResources">The <c>NotResource</c> patterns.</param>
/// <param name="HasCondition">Whether the statement has a <c>Condition</c> block (not evaluated; see <see cref="IamPolicy"/>).</param>
public sealed record IamStatement(
    string Effect,
    IReadOnlyList<string> Actions,
    IReadOnlyList<string> NotActions,
    IReadOnlyList<string> Resources,
    IReadOnlyList<string> NotResources,
    bool HasCondition)
{
    /// <summary>Whether the statement names this action and this resource.</summary>
    public bool Applies(string action, string resource)
    {
        var actionMatches = Actions.Count > 0
            ? Actions.Any(p => IamPolicy.Matches(p, action, ignoreCase: true))
            : NotActions.Count > 0 && !NotActions.Any(p => IamPolicy.Matches(p, action, ignoreCase: true));
        var resourceMatches = Resources.Count > 0
            ? Resources.Any(p => IamPolicy.Matches(p, resource, ignoreCase: false))
            : NotResources.Count > 0 && !NotResources.Any(p => IamPolicy.Matches(p, resource, ignoreCase: false));
        return actionMatches && resourceMatches;
    }
}

/// <summary>
/// The identity-based policies of one principal (the statements of every <c>AWS::IAM::Policy</c> attached to a role),
/// evaluated the way IAM evaluates them within one account: an explicit <c>Deny</c> wins, otherwise an <c>Allow</c> is
/// needed, otherwise the request is implicitly denied
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
/// Action names match case-insensitively, resources case-sensitively, both with the <c>*</c> and <c>?</c> wildcards
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html).
/// A statement with a <c>Condition</c> is not evaluated: it never allows (the conservative reading), and a conditional
/// <c>Deny</c> always denies.
/// </summary>
public sealed class IamPolicy
{
    /// <summary>A policy with no statement: everything is implicitly denied.</summary>
    public static readonly IamPolicy Empty = new([]);

    public IamPolicy(IReadOnlyList<IamStatement> statements) => Statements = statements;

    /// <summary>Gets the statements.</summary>
    public IReadOnlyList<IamStatement> Statements { get; }

    /// <summary>Whether the policy allows <paramref name="action"/> on <paramref name="resource"/>.</summary>
    public bool Allows(string action, string resource)
    {
        var allowed = false;
        foreach (var statement in Statements)
        {
            if (!statement.Applies(action, resource))
            {
                continue;
            }

            if (string.Equals(statement.Effect, "Deny", StringComparison.Ordinal))
            {
                return false;
            }

            allowed |= string.Equals(statement.Effect, "Allow", StringComparison.Ordinal) && !statement.HasCondition;
        }

        return allowed;
    }

    /// <summary>Reads a resolved policy document (<c>{"Statement":[…]}</c> or a single statement object).</summary>
    public static IEnumerable<IamStatement> ReadStatements(JsonNode? document)
    {
        var statements = document?["Statement"];
        var list = statements switch
        {
            JsonArray array => array.Select(s => s!),
            JsonObject single => [single],
            _ => [],
        };
        foreach (var statement in list)
        {
            yield return new IamStatement(
                (string?)statement["Effect"] ?? "Deny",
                Strings(statement["Action"]),
                Strings(statement["NotAction"]),
                Strings(statement["Resource"]),
                Strings(statement["NotResource"]),
                statement["Condition"] is not null);
        }
    }

    /// <summary>IAM wildcard matching: <c>*</c> any run of characters, <c>?</c> one character.</summary>
    public static bool Matches(string pattern, string value, bool ignoreCase)
    {
        var comparison = ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        if (!pattern.Contains('*', StringComparison.Ordinal) && !pattern.Contains('?', StringComparison.Ordinal))
        {
            return string.Equals(pattern, value, comparison);
        }

        var regex = "^" + Regex.Escape(pattern).Replace("\\*", ".*", StringComparison.Ordinal).Replace("\\?", ".", StringComparison.Ordinal) + "$";
        return Regex.IsMatch(value, regex, (ignoreCase ? RegexOptions.IgnoreCase : RegexOptions.None) | RegexOptions.Singleline | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
    }

    private static string[] Strings(JsonNode? node) => node switch
    {
        JsonArray array => [.. array.Select(n => (string?)n).OfType<string>()],
        JsonValue value when value.TryGetValue<string>(out var text) => [text],
        _ => [],
    };
}
