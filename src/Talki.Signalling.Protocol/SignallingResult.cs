using System.Diagnostics.CodeAnalysis;

namespace Talki.Signalling;

/// <summary>An expected failure: a stable code and a human-readable message.</summary>
/// <param name="Code">The stable error code.</param>
/// <param name="Message">A message for people; do not parse it.</param>
public sealed record SignallingError(SignallingErrorCode Code, string Message);

/// <summary>The outcome of an operation that can fail in expected ways: a value or a <see cref="SignallingError"/>.</summary>
/// <typeparam name="T">The type of the value on success.</typeparam>
[SuppressMessage("Design", "CA1000:Do not declare static members on generic types", Justification = "Success/Failure factories are the conventional shape of a result type.")]
public readonly struct SignallingResult<T>
{
    private readonly T? _value;

    private SignallingResult(T? value, SignallingError? error)
    {
        _value = value;
        Error = error;
    }

    /// <summary>Gets a value indicating whether the operation succeeded.</summary>
    [MemberNotNullWhen(false, nameof(Error))]
    public bool IsSuccess => Error is null;

    /// <summary>Gets the error, or <see langword="null"/> on success.</summary>
    public SignallingError? Error { get; }

    /// <summary>Gets the value.</summary>
    /// <exception cref="InvalidOperationException">The result is a failure.</exception>
    public T Value => IsSuccess ? _value! : throw new InvalidOperationException($"The operation failed with {Error.Code}: {Error.Message}");

    /// <summary>Creates a successful result.</summary>
    /// <param name="value">The value.</param>
    /// <returns>The result.</returns>
    public static SignallingResult<T> Success(T value) => new(value, null);

    /// <summary>Creates a failed result.</summary>
    /// <param name="error">The error.</param>
    /// <returns>The result.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="error"/> is <see langword="null"/>.</exception>
    public static SignallingResult<T> Failure(SignallingError error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return new(default, error);
    }

    /// <summary>Creates a failed result.</summary>
    /// <param name="code">The error code.</param>
    /// <param name="message">The message.</param>
    /// <returns>The result.</returns>
    public static SignallingResult<T> Failure(SignallingErrorCode code, string message) => new(default, new SignallingError(code, message));

    /// <summary>Converts a value to a successful result.</summary>
    /// <param name="value">The value.</param>
    public static implicit operator SignallingResult<T>(T value) => Success(value);

    /// <summary>Converts an error to a failed result.</summary>
    /// <param name="error">The error.</param>
    public static implicit operator SignallingResult<T>(SignallingError error) => Failure(error);

    /// <summary>Gets the value when the operation succeeded.</summary>
    /// <param name="value">The value, on success.</param>
    /// <param name="error">The error, on failure.</param>
    /// <returns><see langword="true"/> on success.</returns>
    public bool TryGetValue([MaybeNullWhen(false)] out T value, [NotNullWhen(false)] out SignallingError? error)
    {
        value = _value;
        error = Error;
        return error is null;
    }

    /// <inheritdoc />
    public override string ToString() => IsSuccess ? $"Success({_value})" : $"Failure({Error.Code}: {Error.Message})";
}
