// GraphBuilder: writes ONNX models (onnx.ModelProto) from C#, deterministically.
//
// Why. Real weights cannot be downloaded here, so Trident writes its own small but structurally faithful
// models (design §8: text encoder, DiT, VAE decoder). This builder is the one place that knows the ONNX
// protobuf; pipeline code describes graphs in terms of values and operators.
//
// How to use it.
//
//     var g = new GraphBuilder("tiny_denoiser");                    // opset 17, IR version 8
//     var x = g.Input("latent", TensorElementType.Float, Dim.Symbolic("batch"), 16, 64);
//     var w = DeterministicWeights.FanInNormal(seed: 42);            // or pass float[] yourself
//     using (g.Scope("block0"))                                      // names become "block0/..."
//     {
//         var h = g.LayerNorm(x, 64, "norm");
//         h = g.Add(x, g.MultiHeadAttention(h, h, 64, heads: 4, w, "attn"));
//         x = g.Add(h, g.Linear(g.Gelu(g.Linear(h, 64, 256, w, "fc1")), 256, 64, w, "fc2"));
//     }
//     g.Output(x, "noise_pred", TensorElementType.Float, Dim.Symbolic("batch"), 16, 64);
//     byte[] model = g.ToBytes();                                    // or g.Save(path), g.Build()
//
// - Values. Every method returns a ValueRef naming a tensor in the graph; pass it to later calls. Node outputs
//   get generated names ("block0/MatMul_3") unless you pass `name:`. Names must be unique; the builder checks,
//   and it checks that every input of a node was defined before it, so the graph is topologically sorted by
//   construction. ValueRef.None stands for an omitted optional input.
// - Dims. Graph inputs and outputs take fixed (Dim.Fixed(4), or an int/long) or symbolic (Dim.Symbolic("batch"),
//   or a string) dimensions; the session reports symbolic ones as -1.
// - Initializers. Initializer(name, float[]/Half[]/long[], shape) stores weights as little-endian raw data;
//   Scalar(x) and the Reshape shape argument make constants for you.
// - Operators. Helpers exist for the usual ones (MatMul, Add, Mul, Softmax, Transpose, Reshape, Conv, Resize,
//   DepthToSpace, LayerNormalization, ...); anything else is Node("OpType", inputs, attributes), with Attr.Int,
//   Attr.Float, Attr.Ints, Attr.Floats, Attr.String for attributes.
// - Blocks (Layers.cs). Linear (MatMul + Add), LayerNorm, GroupNorm, Gelu, SiLU, MultiHeadAttention,
//   Conv2d, Upsample2x, PixelShuffle. They take their weights from a WeightInit delegate, called with the
//   full parameter name and shape, so a seeded source (DeterministicWeights) gives the same weights for
//   the same names whatever the order of construction.
// - Determinism. Nothing depends on time, randomness or hash-code order: the same calls give a
//   byte-identical model (protobuf fields are written in field-number order, repeated fields in call order).
//
// The model targets the default ONNX domain at opset 17 (LayerNormalization needs 17) and IR version 8,
// which ONNX Runtime 1.30 loads (it accepts IR <= 13 and opset <= 26).

using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace Trident.Runtime.Onnx.ModelWriter;

/// <summary>A tensor in the graph under construction, by name.</summary>
public readonly record struct ValueRef(string Name)
{
    /// <summary>An omitted optional input (the empty name, as ONNX spells it).</summary>
    public static ValueRef None => new("");

    public override string ToString() => Name;
}

/// <summary>A dimension of a graph input or output: fixed, or symbolic (dynamic, named).</summary>
public readonly record struct Dim
{
    private Dim(long? value, string? symbol) { Value = value; Symbol = symbol; }

    /// <summary>The size, for a fixed dimension.</summary>
    public long? Value { get; }

    /// <summary>The name, for a symbolic dimension.</summary>
    public string? Symbol { get; }

    public static Dim Fixed(long value) =>
        value >= 0 ? new(value, null) : throw new ArgumentOutOfRangeException(nameof(value), "A fixed dimension is non-negative.");

    public static Dim Symbolic(string name) =>
        string.IsNullOrWhiteSpace(name) ? throw new ArgumentException("A symbolic dimension needs a name.", nameof(name)) : new(null, name);

    public static implicit operator Dim(long value) => Fixed(value);
    public static implicit operator Dim(int value) => Fixed(value);
    public static implicit operator Dim(string name) => Symbolic(name);

    public override string ToString() => Symbol ?? Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?";
}

/// <summary>A node attribute. Create with the static factories.</summary>
public sealed class Attr
{
    private Attr(AttributeProto proto) => Proto = proto;

    internal AttributeProto Proto { get; }

    public string Name => Proto.Name;

    public static Attr Int(string name, long value) =>
        new(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value });

    public static Attr Float(string name, float value) =>
        new(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value });

    public static Attr String(string name, string value) =>
        new(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) });

    public static Attr Ints(string name, params long[] values)
    {
        var proto = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        proto.Ints.AddRange(values);
        return new Attr(proto);
    }

    public static Attr Floats(string name, params float[] values)
    {
        var proto = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Floats };
        proto.Floats.AddRange(values);
        return new Attr(proto);
    }
}

/// <summary>Builds one ONNX graph and serialises it as a model. Not thread-safe; see the file header for usage.</summary>
public sealed partial class GraphBuilder
{
    /// <summary>The ONNX IR version written.</summary>
    public const long IrVersion = 8;

    /// <summary>The default opset (LayerNormalization needs at least 17).</summary>
    public const int DefaultOpset = 17;

    private readonly GraphProto graph;
    private readonly HashSet<string> defined = new(StringComparer.Ordinal);
    private readonly Stack<string> scopes = new();
    private readonly Dictionary<string, int> counters = new(StringComparer.Ordinal);

    /// <summary>A builder for a graph called <paramref name="graphName"/> in the default ONNX domain at <paramref name="opset"/>.</summary>
    public GraphBuilder(string graphName, int opset = DefaultOpset)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(graphName);
        if (opset < 13) throw new ArgumentOutOfRangeException(nameof(opset), "The builder writes opset 13 or later.");
        graph = new GraphProto { Name = graphName };
        Opset = opset;
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("ONNX raw tensor data is little-endian; this machine is not.");
    }

    /// <summary>The opset of the default ONNX domain the model imports.</summary>
    public int Opset { get; }

    /// <summary>Free text stored as the graph's doc_string.</summary>
    public string? Description { get; set; }

    // ---------------------------------------------------------------------------------------------------------
    // Graph inputs, outputs, initializers
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>Declares a graph input. Its name is used as given (scopes do not apply).</summary>
    public ValueRef Input(string name, TensorElementType elementType, params Dim[] dims)
    {
        Define(name);
        graph.Input.Add(ValueInfo(name, elementType, dims));
        return new ValueRef(name);
    }

    /// <summary>
    /// Declares <paramref name="value"/> as a graph output called <paramref name="name"/> (an Identity node is
    /// added when the names differ). Pass <paramref name="dims"/> = null to leave the shape undeclared.
    /// </summary>
    public ValueRef Output(ValueRef value, string name, TensorElementType elementType, params Dim[]? dims)
    {
        RequireDefined(value, "Output");
        if (graph.Output.Any(output => output.Name == name))
            throw new ArgumentException($"The graph already has an output called '{name}'.");
        if (value.Name != name) value = Node("Identity", [value], [], name, scoped: false);
        graph.Output.Add(ValueInfo(name, elementType, dims));
        return value;
    }

    /// <summary>A float32 initializer (a constant tensor stored in the model).</summary>
    public ValueRef Initializer(string name, float[] data, params long[] shape) =>
        AddInitializer(Scoped(name), TensorElementType.Float, MemoryMarshal.AsBytes(data.AsSpan()), data.Length, shape);

    /// <summary>A float16 initializer.</summary>
    public ValueRef Initializer(string name, Half[] data, params long[] shape) =>
        AddInitializer(Scoped(name), TensorElementType.Float16, MemoryMarshal.AsBytes(data.AsSpan()), data.Length, shape);

    /// <summary>An int64 initializer.</summary>
    public ValueRef Initializer(string name, long[] data, params long[] shape) =>
        AddInitializer(Scoped(name), TensorElementType.Int64, MemoryMarshal.AsBytes(data.AsSpan()), data.Length, shape);

    /// <summary>A float32 scalar constant, named automatically.</summary>
    public ValueRef Scalar(float value) => Constant("const", [value]);

    /// <summary>A float32 constant named automatically from <paramref name="stem"/> (within the current scope).</summary>
    public ValueRef Constant(string stem, float[] data, params long[] shape) =>
        AddInitializer(NextName(stem), TensorElementType.Float, MemoryMarshal.AsBytes(data.AsSpan()), data.Length, shape);

    /// <summary>An int64 1-D constant, named automatically (for shapes, axes, ...).</summary>
    public ValueRef Int64s(params long[] values) =>
        AddInitializer(NextName("const"), TensorElementType.Int64, MemoryMarshal.AsBytes(values.AsSpan()), values.Length, [values.Length]);

    // ---------------------------------------------------------------------------------------------------------
    // Nodes
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>Adds a node with one output, named automatically, and returns that output.</summary>
    public ValueRef Node(string opType, IReadOnlyList<ValueRef> inputs, params Attr[] attributes) =>
        Node(opType, inputs, attributes, name: null, scoped: true);

    /// <summary>Adds a node with one output called <paramref name="name"/> (within the current scope).</summary>
    public ValueRef Node(string opType, IReadOnlyList<ValueRef> inputs, string name, params Attr[] attributes) =>
        Node(opType, inputs, attributes, name, scoped: true);

    /// <summary>Adds a node with <paramref name="outputCount"/> outputs and returns them in order.</summary>
    public ValueRef[] Node(string opType, IReadOnlyList<ValueRef> inputs, int outputCount, params Attr[] attributes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(opType);
        if (outputCount < 1) throw new ArgumentOutOfRangeException(nameof(outputCount));
        var node = NewNode(opType, inputs, attributes);
        var outputs = new ValueRef[outputCount];
        for (var i = 0; i < outputCount; i++)
        {
            var output = NextName(opType);
            Define(output);
            node.Output.Add(output);
            outputs[i] = new ValueRef(output);
        }
        graph.Node.Add(node);
        return outputs;
    }

    /// <summary>
    /// Opens a naming scope: until the returned object is disposed, generated and given node/initializer
    /// names are prefixed with "scope/". Scopes nest.
    /// </summary>
    public IDisposable Scope(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        scopes.Push(name);
        return new ScopeExit(this);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Output
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>The model as a protobuf message (a fresh copy; the builder stays usable).</summary>
    public ModelProto Build()
    {
        if (graph.Output.Count == 0) throw new InvalidOperationException("The graph has no outputs: call Output first.");
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "trident",
            ProducerVersion = "1",
            Graph = graph.Clone(),
        };
        if (Description is not null) model.Graph.DocString = Description;
        model.OpsetImport.Add(new OperatorSetIdProto { Version = Opset });
        return model;
    }

    /// <summary>The serialised model. The same calls always give the same bytes.</summary>
    public byte[] ToBytes() => Build().ToByteArray();

    /// <summary>Writes the serialised model to <paramref name="path"/>.</summary>
    public void Save(string path) => File.WriteAllBytes(path, ToBytes());

    /// <summary>
    /// Writes the model to <paramref name="path"/> with every initializer's data in the external file
    /// <paramref name="dataFileName"/> beside it, as large exports ship their weights (torch.onnx/onnx's
    /// external-data format: each TensorProto has data_location EXTERNAL and "location", "offset", "length"
    /// entries; offsets aligned to 4 KiB). As onnx.save_model's size_threshold (1 KiB), smaller tensors — shape
    /// constants among them, which ONNX Runtime's shape inference must read in place — stay inside the model.
    /// </summary>
    public void SaveWithExternalData(string path, string dataFileName)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataFileName);
        if (Path.GetFileName(dataFileName) != dataFileName) throw new ArgumentException("must be a file name beside the model", nameof(dataFileName));
        var model = Build();
        using var data = new MemoryStream();
        foreach (var tensor in model.Graph.Initializer)
        {
            if (tensor.RawData.Length < 1024) continue;
            var aligned = (data.Length + 4095) / 4096 * 4096;
            data.SetLength(aligned);
            data.Position = aligned;
            tensor.RawData.WriteTo(data);
            var length = tensor.RawData.Length;
            tensor.RawData = ByteString.Empty;
            tensor.DataLocation = TensorProto.Types.DataLocation.External;
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataFileName });
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = aligned.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        }
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        File.WriteAllBytes(Path.Combine(directory, dataFileName), data.ToArray());
        File.WriteAllBytes(path, model.ToByteArray());
    }

    // ---------------------------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------------------------

    private ValueRef Node(string opType, IReadOnlyList<ValueRef> inputs, Attr[] attributes, string? name, bool scoped)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(opType);
        var node = NewNode(opType, inputs, attributes);
        var output = name is null ? NextName(opType) : scoped ? Scoped(name) : name;
        Define(output);
        node.Output.Add(output);
        graph.Node.Add(node);
        return new ValueRef(output);
    }

    private NodeProto NewNode(string opType, IReadOnlyList<ValueRef> inputs, Attr[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = NextName(opType + "_node") };
        foreach (var input in inputs)
        {
            if (input.Name.Length > 0) RequireDefined(input, opType);
            node.Input.Add(input.Name);
        }
        foreach (var attribute in attributes) node.Attribute.Add(attribute.Proto.Clone());
        return node;
    }

    // `full` is the final (already scoped) name.
    private ValueRef AddInitializer(string full, TensorElementType type, ReadOnlySpan<byte> bytes, long count, long[] shape)
    {
        var expected = Tensor.ElementCount(shape);
        if (expected != count)
            throw new ArgumentException($"Initializer '{full}': shape [{string.Join(", ", shape)}] has {expected} elements, data has {count}.");
        Define(full);
        var tensor = new TensorProto { Name = full, DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.AddRange(shape);
        graph.Initializer.Add(tensor);
        return new ValueRef(full);
    }

    private static ValueInfoProto ValueInfo(string name, TensorElementType elementType, Dim[]? dims)
    {
        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)elementType };
        if (dims is not null)
        {
            var shape = new TensorShapeProto();
            foreach (var dim in dims)
                shape.Dim.Add(dim.Symbol is { } symbol
                    ? new TensorShapeProto.Types.Dimension { DimParam = symbol }
                    : new TensorShapeProto.Types.Dimension { DimValue = dim.Value ?? 0 });
            tensorType.Shape = shape;
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }

    private void Define(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (!defined.Add(name)) throw new ArgumentException($"The graph already has a value called '{name}'.");
    }

    private void RequireDefined(ValueRef value, string user)
    {
        if (!defined.Contains(value.Name))
            throw new ArgumentException($"{user}: '{value.Name}' is not a value of this graph (define it before using it).");
    }

    // Generated names: "<scope>/<stem>_<n>", n counting per stem from 0 and skipping names already taken, so
    // they depend only on the order of calls.
    private string NextName(string stem)
    {
        var scoped = Scoped(stem);
        counters.TryGetValue(scoped, out var n);
        string name;
        do name = $"{scoped}_{n++}"; while (defined.Contains(name));
        counters[scoped] = n;
        return name;
    }

    private string Scoped(string name) =>
        scopes.Count == 0 ? name : string.Join("/", scopes.Reverse()) + "/" + name;

    private sealed class ScopeExit(GraphBuilder builder) : IDisposable
    {
        private bool done;

        public void Dispose()
        {
            if (done) return;
            done = true;
            builder.scopes.Pop();
        }
    }
}
