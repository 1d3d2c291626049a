//! Modules and blocks (D2L 5.1–5.2): the `Module` trait, depth-first dotted parameter
//! names like PyTorch's (`net.0.weight`), train/eval mode that reaches every child, and
//! `Sequential`.

use d2l_tensor::{Device, Error, Result, Tensor, TensorId};
use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

/// Lets `&dyn Module` be downcast to its concrete layer (for `apply`-style init).
pub trait AsAny {
    /// The module as `&dyn Any`.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A layer or a block of layers: a forward computation plus named parameters.
///
/// Implement `forward`, and `parameters_local` / `children` / `buffers_local` for
/// whatever the module holds; everything else (names, counting, mode, state dicts)
/// is provided.
pub trait Module: AsAny + AsDynModule + Send + Sync {
    /// Computes the output for one input batch.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// This module's own parameters (not its children's), with local names.
    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// This module's own buffers (saved state that is not trained, e.g. running means).
    fn buffers_local(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// The sub-modules, with the names used in dotted parameter paths.
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        Vec::new()
    }

    /// Switches this module's own train/eval behaviour (Dropout, BatchNorm); children
    /// are reached by [`Module::train`] / [`Module::eval`].
    fn set_training_local(&self, _training: bool) {}

    /// A short description for printing (`Linear(in_features=784, out_features=256)`).
    fn describe(&self) -> String {
        let full = std::any::type_name_of_val(self);
        full.rsplit("::").next().unwrap_or(full).to_string()
    }

    /// Every parameter, depth-first with dotted names; a parameter shared by several
    /// modules is listed once, under its first name (as PyTorch does).
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        collect(self, "", &mut |name, t, is_param| {
            if is_param && seen.insert(t.id()) {
                out.push((name, t));
            }
        });
        out
    }

    /// Every parameter (shared ones once).
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Every buffer, dotted names.
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        collect(self, "", &mut |name, t, is_param| {
            if !is_param {
                out.push((name, t));
            }
        });
        out
    }

    /// The number of scalar parameters (shared ones counted once).
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.numel()).sum()
    }

    /// One parameter by dotted name (`"0.weight"`).
    fn parameter(&self, name: &str) -> Result<Tensor> {
        let all = self.named_parameters();
        all.iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
                Error::InvalidArgument {
                    op: "parameter",
                    msg: format!("no parameter named `{name}`; the module has {names:?}"),
                }
            })
    }

    /// Parameters and buffers by dotted name, each tensor once (PyTorch's `state_dict`).
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        let mut seen: HashSet<TensorId> = HashSet::new();
        collect(self, "", &mut |name, t, _| {
            if seen.insert(t.id()) {
                out.push((name, t));
            }
        });
        out
    }

    /// Moves every parameter and buffer to `device`, in place (PyTorch's `net.to(device)`,
    /// D2L 5.6.3): each buffer is moved once with [`Tensor::move_to_`], so every handle on
    /// it (an optimiser's copy of a parameter, a shared weight, a view) moves too, and so
    /// does its stored gradient. An unavailable device is an
    /// [`Error::DeviceUnavailable`], reported before anything is moved.
    fn to(&self, device: Device) -> Result<()> {
        d2l_tensor::cuda::check(device)?;
        for (_, t) in self.state_dict() {
            t.move_to_(device)?;
        }
        Ok(())
    }

    /// The device of the first parameter or buffer (`None` for a module that holds
    /// no tensors, e.g. an activation).
    fn device(&self) -> Option<Device> {
        let mut found = None;
        collect(self, "", &mut |_, t, _| {
            if found.is_none() {
                found = Some(t.device());
            }
        });
        found
    }

    /// Sets training mode here and in every descendant.
    fn train(&self) {
        set_mode(self, true)
    }

    /// Sets evaluation mode here and in every descendant.
    fn eval(&self) {
        set_mode(self, false)
    }

    /// Calls `f` on every module, children first then this one (PyTorch's `apply`).
    fn apply(&self, f: &mut dyn FnMut(&dyn Module) -> Result<()>) -> Result<()> {
        for (_, c) in self.children() {
            c.apply(f)?;
        }
        f(self.as_dyn())
    }

    /// Stops (or resumes) gradients for every parameter: freezing for fine-tuning.
    fn requires_grad_(&self, on: bool) -> Result<()> {
        for p in self.parameters() {
            p.requires_grad_(on)?;
        }
        Ok(())
    }

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }

    /// A multi-line layer tree like PyTorch's `print(net)`.
    fn summary_tree(&self) -> String {
        let mut s = String::new();
        tree(self, 0, &mut s);
        s
    }
}

/// Checks that every tensor in `tensors` lives on one device and returns it (the CPU
/// for an empty list), or an [`Error::DeviceMismatch`] naming the first two devices
/// that differ. For layers whose kernels read their inputs on the host (fused RNN,
/// fused cross-entropy), which would otherwise mix devices silently.
pub fn same_device(op: &'static str, tensors: &[&Tensor]) -> Result<Device> {
    let Some(first) = tensors.first() else {
        return Ok(Device::Cpu);
    };
    let d = first.device();
    for t in &tensors[1..] {
        if t.device() != d {
            return Err(Error::DeviceMismatch {
                op,
                lhs: d,
                rhs: t.device(),
            });
        }
    }
    Ok(d)
}

/// Upcasts any module to `&dyn Module` (implemented for every sized module, so provided
/// methods can hand `self` to code that takes a trait object).
pub trait AsDynModule {
    /// The module as a trait object.
    fn as_dyn(&self) -> &dyn Module;
}

impl<T: Module> AsDynModule for T {
    fn as_dyn(&self) -> &dyn Module {
        self
    }
}

fn collect<M: Module + ?Sized>(m: &M, prefix: &str, f: &mut dyn FnMut(String, Tensor, bool)) {
    for (n, t) in m.parameters_local() {
        f(format!("{prefix}{n}"), t, true);
    }
    for (n, t) in m.buffers_local() {
        f(format!("{prefix}{n}"), t, false);
    }
    for (n, c) in m.children() {
        collect(c.as_ref(), &format!("{prefix}{n}."), f);
    }
}

fn set_mode<M: Module + ?Sized>(m: &M, training: bool) {
    m.set_training_local(training);
    for (_, c) in m.children() {
        set_mode(c.as_ref(), training);
    }
}

fn tree<M: Module + ?Sized>(m: &M, depth: usize, out: &mut String) {
    let children = m.children();
    out.push_str(&m.describe());
    if children.is_empty() {
        return;
    }
    out.push_str("(\n");
    for (n, c) in children {
        out.push_str(&"  ".repeat(depth + 1));
        out.push_str(&format!("({n}): "));
        tree(c.as_ref(), depth + 1, out);
        out.push('\n');
    }
    out.push_str(&"  ".repeat(depth));
    out.push(')');
}

/// Layers applied one after another, named `0`, `1`, … like `nn.Sequential`.
#[derive(Clone, Default)]
pub struct Sequential {
    layers: Vec<Arc<dyn Module>>,
}

impl Sequential {
    /// An empty stack.
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// Appends a layer (builder style, as `nn.Sequential(a, b, ...)`).
    #[allow(clippy::should_implement_trait)]
    pub fn add<M: Module + 'static>(mut self, layer: M) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// Appends a layer that may also be used elsewhere (parameter sharing, D2L 5.2.3).
    pub fn add_shared(mut self, layer: Arc<dyn Module>) -> Self {
        self.layers.push(layer);
        self
    }

    /// Appends a layer in place.
    pub fn push<M: Module + 'static>(&mut self, layer: M) {
        self.layers.push(Arc::new(layer));
    }

    /// The layer at `index`.
    pub fn get(&self, index: usize) -> Option<&Arc<dyn Module>> {
        self.layers.get(index)
    }

    /// The layer at `index`, downcast to its type (`net.get_as::<Linear>(0)`).
    pub fn get_as<T: Module + 'static>(&self, index: usize) -> Option<&T> {
        self.layers
            .get(index)
            .and_then(|l| l.as_ref().as_any().downcast_ref::<T>())
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Runs the layers in order and returns every intermediate output (for summaries).
    pub fn forward_trace(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut outs = Vec::with_capacity(self.layers.len());
        let mut cur = x.clone();
        for l in &self.layers {
            cur = l.forward(&cur)?;
            outs.push(cur.clone());
        }
        Ok(outs)
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut cur = x.clone();
        for l in &self.layers {
            cur = l.forward(&cur)?;
        }
        Ok(cur)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.clone()))
            .collect()
    }

    fn describe(&self) -> String {
        "Sequential".into()
    }
}
