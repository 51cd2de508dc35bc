// A float32 model turned into its float16 form: half-size weights and float16 inputs and outputs.
//
// Design note. Every float32 initializer is stored as float16 and every float32 graph input and output is
// declared float16, the way a half-precision export ships (what a client feeds and receives, and what the
// file weighs). Inside, a Cast to float32 follows each of them (and a Cast to float16 precedes each output),
// so every operator still computes in float32: ONNX Runtime's CPU provider has no float16 kernels for most of
// the tiny pipeline's operators (LayerNormalization, Conv, Softmax…), and this way the same file runs on the
// CPU and on CUDA. The graph stays topologically sorted: input and weight casts go first, output casts last.

using Google.Protobuf;
using Onnx;
using System.Runtime.InteropServices;

namespace Trident.Runtime.Onnx.ModelWriter;

/// <summary>Rewrites float32 models as float16 models (float16 weights and I/O, float32 compute).</summary>
public static class Float16Conversion
{
    private const int Float = (int)TensorElementType.Float;
    private const int Float16 = (int)TensorElementType.Float16;

    /// <summary>A float16 copy of <paramref name="model"/>; the argument is not modified.</summary>
    public static ModelProto ToFloat16(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var result = model.Clone();
        var graph = result.Graph;
        var prologue = new List<NodeProto>();
        var renames = new Dictionary<string, string>(StringComparer.Ordinal);

        foreach (var initializer in graph.Initializer.Where(t => t.DataType == Float))
        {
            var floats = initializer.RawData.Length > 0
                ? MemoryMarshal.Cast<byte, float>(initializer.RawData.Span).ToArray()
                : initializer.FloatData.ToArray();
            var halves = Array.ConvertAll(floats, f => (Half)f);
            var original = initializer.Name;
            initializer.Name = original + "/float16";
            initializer.DataType = Float16;
            initializer.FloatData.Clear();
            initializer.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(halves.AsSpan()));
            prologue.Add(Cast(initializer.Name, original, Float));
        }

        foreach (var input in graph.Input.Where(i => i.Type.TensorType.ElemType == Float))
        {
            input.Type.TensorType.ElemType = Float16;
            var inside = input.Name + "/float32";
            renames[input.Name] = inside;
            prologue.Add(Cast(input.Name, inside, Float));
        }
        foreach (var node in graph.Node)
            for (var i = 0; i < node.Input.Count; i++)
                if (renames.TryGetValue(node.Input[i], out var inside)) node.Input[i] = inside;

        var epilogue = new List<NodeProto>();
        foreach (var output in graph.Output.Where(o => o.Type.TensorType.ElemType == Float))
        {
            output.Type.TensorType.ElemType = Float16;
            var inside = output.Name + "/float32";
            foreach (var node in graph.Node)
                for (var i = 0; i < node.Output.Count; i++)
                    if (node.Output[i] == output.Name) node.Output[i] = inside;
            epilogue.Add(Cast(inside, output.Name, Float16));
        }

        var nodes = prologue.Concat(graph.Node).Concat(epilogue).ToList();
        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        return result;
    }

    private static NodeProto Cast(string from, string to, int type)
    {
        var node = new NodeProto { OpType = "Cast", Name = "cast:" + to };
        node.Input.Add(from);
        node.Output.Add(to);
        node.Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = type });
        return node;
    }
}
