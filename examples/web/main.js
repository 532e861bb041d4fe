// The example page: imports a compiled bundle's model.js, loads a checkpoint by URL (read with HTTP
// Range requests), and streams the ids generate() yields into the page. URL parameters: bundle (the
// model.js URL, default bundle/model.js) and checkpoint (default checkpoint/), read once at load;
// prompt (ids, comma-separated), maxTokens, temperature, topK, topP and seed preset the form; run=1
// generates once loaded. `window.demo` holds what the page did (state, tokens, error), for scripts and tests.
const params = new URLSearchParams(location.search);
const form = document.getElementById('options');
const button = document.getElementById('generate');
const tokensOut = document.getElementById('tokens');
const status = document.getElementById('status');
const demo = (window.demo = { state: 'loading', tokens: [], error: undefined });

for (const input of form.elements) if (input.name && params.has(input.name)) input.value = params.get(input.name);

function fail(e) {
  demo.state = 'error';
  demo.error = String(e?.message ?? e);
  status.className = 'error';
  status.textContent = demo.error;
  button.disabled = false;
}

/** The form's values as generate()'s arguments; the bundle's load() and generate() check them (ModelError). */
function readForm() {
  const value = (name) => form.elements.namedItem(name).value.trim();
  const prompt = value('prompt').split(/[\s,]+/).filter(Boolean).map(Number);
  const number = (name) => (value(name) === '' ? undefined : Number(value(name)));
  return { prompt, options: { maxTokens: number('maxTokens'), temperature: number('temperature'), topK: number('topK'), topP: number('topP'), seed: number('seed') } };
}

async function main() {
  if (!navigator.gpu) throw new Error('This browser has no WebGPU (navigator.gpu): use a recent Chrome or Edge, over https or localhost.');
  const bundleUrl = new URL(params.get('bundle') ?? 'bundle/model.js', location.href).href;
  const bundle = await import(bundleUrl);
  const checkpoint = new URL(params.get('checkpoint') ?? 'checkpoint/', location.href).href;
  status.textContent = `Loading ${bundle.config.name} from ${checkpoint}…`;
  const model = await bundle.load({ weights: checkpoint });
  const loadStart = performance.now();
  await model.prepare(); // upload the whole model's weights now, so timings below are generation only
  const adapter = [model.adapter.vendor, model.adapter.architecture].filter(Boolean).join(' ') || model.adapter.description || 'WebGPU';
  const ready = `${bundle.config.name} on ${adapter}: vocabulary ${model.vocab}, context ${model.context}; ` +
    `weights uploaded and kernels built in ${(performance.now() - loadStart).toFixed(0)} ms.`;
  status.textContent = ready;
  demo.state = 'ready';
  button.disabled = false;

  async function generate() {
    button.disabled = true;
    status.className = '';
    demo.state = 'generating';
    demo.tokens = [];
    demo.error = undefined;
    const { prompt, options } = readForm();
    tokensOut.replaceChildren(Object.assign(document.createElement('span'), { className: 'prompt', textContent: prompt.join(' ') }));
    const start = performance.now();
    let first = start;
    for await (const id of model.generate(prompt, options)) {
      if (demo.tokens.length === 0) first = performance.now();
      demo.tokens.push(id);
      tokensOut.append(' ', Object.assign(document.createElement('span'), { className: 'new', textContent: String(id) }));
    }
    const end = performance.now();
    const decode = demo.tokens.length > 1 ? ((demo.tokens.length - 1) / ((end - first) / 1000)).toFixed(1) : '–';
    status.textContent = `${ready}\n${demo.tokens.length} tokens: first after ${(first - start).toFixed(0)} ms, then ${decode} tokens/s.`;
    demo.state = 'done';
    button.disabled = false;
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    generate().catch(fail);
  });
  if (params.get('run') === '1') await generate();
}

main().catch(fail);
