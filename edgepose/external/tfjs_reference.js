// Run a TF.js graph model with TF.js's own pure-JS CPU backend: the reference a converted model is
// checked against. Usage: node tfjs_reference.js MODEL.json REQUEST.json
// REQUEST.json: {"inputs": {name: {"dtype": "float32"|"int32", "shape": [...], "file": "x.bin"}},
//                "outputs": [names], "out_dir": "dir"}; each output is written as out_dir/<i>.bin
// (little-endian float32) and its shape to out_dir/shapes.json. Node modules are looked up through
// NODE_PATH (the cache the conversion step installs @tensorflow/tfjs-* into).
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const converter = require('@tensorflow/tfjs-converter');

function fileHandler(modelPath) {
  return {
    load: async () => {
      const model = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      const dir = path.dirname(modelPath);
      const specs = [];
      const buffers = [];
      for (const group of model.weightsManifest) {
        for (const spec of group.weights) specs.push(spec);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: model.modelTopology,
        format: model.format,
        generatedBy: model.generatedBy,
        convertedBy: model.convertedBy,
        signature: model.signature,
        userDefinedMetadata: model.userDefinedMetadata,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

async function main() {
  const [modelPath, requestPath] = process.argv.slice(2);
  if (!modelPath || !requestPath) {
    console.error('usage: node tfjs_reference.js MODEL.json REQUEST.json');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  const req = JSON.parse(fs.readFileSync(requestPath, 'utf8'));
  const model = await converter.loadGraphModel(fileHandler(modelPath));
  const feeds = {};
  for (const [name, spec] of Object.entries(req.inputs)) {
    const raw = fs.readFileSync(spec.file);
    const ab = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
    const data = spec.dtype === 'int32' ? new Int32Array(ab) : new Float32Array(ab);
    feeds[name] = tf.tensor(data, spec.shape, spec.dtype);
  }
  let outs = await model.executeAsync(feeds, req.outputs);
  if (!Array.isArray(outs)) outs = [outs];
  const shapes = [];
  for (let i = 0; i < outs.length; i++) {
    const t = outs[i].dtype === 'float32' ? outs[i] : outs[i].cast('float32');
    const data = await t.data();
    fs.writeFileSync(path.join(req.out_dir, `${i}.bin`), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    shapes.push(outs[i].shape);
  }
  fs.writeFileSync(path.join(req.out_dir, 'shapes.json'), JSON.stringify(shapes));
}

main().catch((e) => {
  console.error(`tfjs reference failed: ${e.message || e}`);
  process.exit(1);
});
