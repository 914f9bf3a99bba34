//! Random numbers identical to `numpy.random.default_rng(seed)`: PCG64 seeded through numpy's
//! SeedSequence, the Generator's algorithms for floats, bounded integers and ziggurat normals,
//! and O(1)/O(log n) jumps so any block of a huge random array can be regenerated on demand.

use std::sync::OnceLock;

/// The 128-bit LCG multiplier of PCG64.
const PCG_MULT: u128 = (2_549_297_995_355_413_924u128 << 64) | 4_865_540_595_714_422_341;

/// 2^-53: maps the top 53 bits of a draw onto [0, 1).
const INV_2_53: f64 = 1.0 / 9_007_199_254_740_992.0;

/// numpy's PCG64 (128-bit LCG, XSL-RR output) with numpy's 32-bit half buffering.
#[derive(Clone, Debug)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
    has_uint32: bool,
    uinteger: u32,
}

/// A precomputed jump of a fixed number of draws, applied in O(1).
///
/// `delta` LCG steps map `s` to `multiplier * s + increment * inc`; keeping the stream's
/// increment out of the map lets one `Jump` serve every seed.
#[derive(Clone, Copy, Debug)]
pub struct Jump {
    multiplier: u128,
    increment: u128,
}

impl Jump {
    /// The jump of `delta` 64-bit draws, built by square-and-multiply in O(log delta).
    pub fn new(mut delta: u128) -> Self {
        let (mut acc_mult, mut acc_inc) = (1u128, 0u128);
        let (mut cur_mult, mut cur_inc) = (PCG_MULT, 1u128);
        while delta > 0 {
            if delta & 1 == 1 {
                acc_mult = acc_mult.wrapping_mul(cur_mult);
                acc_inc = acc_inc.wrapping_mul(cur_mult).wrapping_add(cur_inc);
            }
            // Doubling a jump of n steps: the increment sum becomes (mult^n + 1) * sum.
            cur_inc = cur_mult.wrapping_add(1).wrapping_mul(cur_inc);
            cur_mult = cur_mult.wrapping_mul(cur_mult);
            delta >>= 1;
        }
        Jump {
            multiplier: acc_mult,
            increment: acc_inc,
        }
    }
}

/// SeedSequence(seed).generate_state(4, uint64) for a non-negative integer seed.
fn seed_sequence_words(seed: u64) -> [u64; 4] {
    const INIT_A: u32 = 0x43b0_d7e5;
    const MULT_A: u32 = 0x931e_8875;
    const INIT_B: u32 = 0x8b51_f9dd;
    const MULT_B: u32 = 0x58f3_8ded;
    const MIX_MULT_L: u32 = 0xca01_f9dd;
    const MIX_MULT_R: u32 = 0x4973_f715;
    const XSHIFT: u32 = 16;
    const POOL: usize = 4;

    // The seed is split into little-endian 32-bit words, with no zero padding beyond one word.
    let low = seed as u32;
    let high = (seed >> 32) as u32;
    let entropy_len = if high == 0 { 1 } else { 2 };
    let entropy = [low, high];

    let mut hash_a = INIT_A;
    let mut hashmix = |value: u32| {
        let mut v = value ^ hash_a;
        hash_a = hash_a.wrapping_mul(MULT_A);
        v = v.wrapping_mul(hash_a);
        v ^ (v >> XSHIFT)
    };
    let mix = |x: u32, y: u32| {
        let r = MIX_MULT_L
            .wrapping_mul(x)
            .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
        r ^ (r >> XSHIFT)
    };

    let mut pool = [0u32; POOL];
    for (i, slot) in pool.iter_mut().enumerate() {
        let word = if i < entropy_len { entropy[i] } else { 0 };
        *slot = hashmix(word);
    }
    for src in 0..POOL {
        for dst in 0..POOL {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }

    let mut hash_b = INIT_B;
    let mut words = [0u32; 8];
    for (i, w) in words.iter_mut().enumerate() {
        let mut v = pool[i % POOL] ^ hash_b;
        hash_b = hash_b.wrapping_mul(MULT_B);
        v = v.wrapping_mul(hash_b);
        *w = v ^ (v >> XSHIFT);
    }
    let mut out = [0u64; 4];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u64::from(words[2 * i]) | (u64::from(words[2 * i + 1]) << 32);
    }
    out
}

impl Pcg64 {
    /// The bit generator of `numpy.random.default_rng(seed)`.
    pub fn from_seed(seed: u64) -> Self {
        let w = seed_sequence_words(seed);
        // The first two words form the initial state and the last two the stream selector,
        // each read with the first word as the high half.
        let init_state = (u128::from(w[0]) << 64) | u128::from(w[1]);
        let init_seq = (u128::from(w[2]) << 64) | u128::from(w[3]);
        let mut rng = Pcg64 {
            state: 0,
            inc: (init_seq << 1) | 1,
            has_uint32: false,
            uinteger: 0,
        };
        rng.step();
        rng.state = rng.state.wrapping_add(init_state);
        rng.step();
        rng
    }

    #[inline(always)]
    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// The next 64-bit draw (`bit_generator.random_raw()`).
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let rot = (s >> 122) as u32;
        (((s >> 64) as u64) ^ (s as u64)).rotate_right(rot)
    }

    /// The next 32-bit draw: the low half of a fresh 64-bit draw, then its cached high half.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.has_uint32 {
            self.has_uint32 = false;
            return self.uinteger;
        }
        let draw = self.next_u64();
        self.has_uint32 = true;
        self.uinteger = (draw >> 32) as u32;
        draw as u32
    }

    /// Skips `delta` 64-bit draws in O(log delta), dropping any cached 32-bit half.
    pub fn advance(&mut self, delta: u128) {
        self.jump(&Jump::new(delta));
    }

    /// Applies a precomputed jump in O(1), dropping any cached 32-bit half like `advance`.
    #[inline]
    pub fn jump(&mut self, j: &Jump) {
        self.state = j
            .multiplier
            .wrapping_mul(self.state)
            .wrapping_add(j.increment.wrapping_mul(self.inc));
        self.has_uint32 = false;
        self.uinteger = 0;
    }

    /// `Generator.random()`: the top 53 bits of a draw scaled onto [0, 1).
    #[inline(always)]
    pub fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * INV_2_53
    }

    /// Fills `out` with consecutive `random()` draws.
    pub fn fill_random(&mut self, out: &mut [f64]) {
        for v in out {
            *v = self.random();
        }
    }

    /// `Generator.integers(low, high, size=out.len())` for int64 (Lemire's method); an empty
    /// range (`high <= low`, an error in numpy) fills `low` without drawing.
    pub fn integers_i64(&mut self, low: i64, high: i64, out: &mut [i64]) {
        if high <= low {
            out.fill(low);
            return;
        }
        // Inclusive span high - 1 - low, which always fits in u64.
        let span = (i128::from(high) - 1 - i128::from(low)) as u64;
        for v in out.iter_mut() {
            let draw = if span == 0 {
                0
            } else if span < u64::from(u32::MAX) {
                u64::from(self.bounded_lemire_u32(span as u32))
            } else if span == u64::from(u32::MAX) {
                u64::from(self.next_u32())
            } else if span == u64::MAX {
                self.next_u64()
            } else {
                self.bounded_lemire_u64(span)
            };
            *v = low.wrapping_add(draw as i64);
        }
    }

    /// Lemire's rejection method on 32-bit halves, for an inclusive span below `u32::MAX`.
    fn bounded_lemire_u32(&mut self, span: u32) -> u32 {
        let excl = span + 1;
        let mut m = u64::from(self.next_u32()) * u64::from(excl);
        let mut leftover = m as u32;
        if leftover < excl {
            let threshold = (u32::MAX - span) % excl;
            while leftover < threshold {
                m = u64::from(self.next_u32()) * u64::from(excl);
                leftover = m as u32;
            }
        }
        (m >> 32) as u32
    }

    /// Lemire's rejection method on 64-bit draws, for an inclusive span below `u64::MAX`.
    fn bounded_lemire_u64(&mut self, span: u64) -> u64 {
        let excl = span + 1;
        let mut m = u128::from(self.next_u64()) * u128::from(excl);
        let mut leftover = m as u64;
        if leftover < excl {
            let threshold = (u64::MAX - span) % excl;
            while leftover < threshold {
                m = u128::from(self.next_u64()) * u128::from(excl);
                leftover = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// `Generator.integers(high, size=out.len(), dtype=uint8)`: Lemire's method on bytes peeled
    /// from 32-bit draws; `high == 0` (an error in numpy) fills zeros without drawing.
    pub fn integers_u8(&mut self, high: u8, out: &mut [u8]) {
        if high <= 1 {
            out.fill(0);
            return;
        }
        let span = high - 1;
        let excl = u16::from(high);
        let threshold = (u8::MAX - span) % high;
        // The byte buffer lives for one call only: leftover bytes are discarded afterwards.
        let mut bytes = ByteBuffer::default();
        for v in out.iter_mut() {
            let mut m = u16::from(bytes.next(self)) * excl;
            let mut leftover = m as u8;
            if leftover < high {
                while leftover < threshold {
                    m = u16::from(bytes.next(self)) * excl;
                    leftover = m as u8;
                }
            }
            *v = (m >> 8) as u8;
        }
    }

    /// `Generator.standard_normal()` (and `normal()` with default loc and scale): the
    /// 256-layer ziggurat on 64-bit draws, one draw per value about 99% of the time.
    pub fn standard_normal(&mut self) -> f64 {
        let z = ziggurat();
        loop {
            let r = self.next_u64();
            let idx = (r & 0xff) as usize;
            let r = r >> 8;
            let negative = r & 1 == 1;
            let rabs = (r >> 1) & 0x000f_ffff_ffff_ffff;
            let mut x = rabs as f64 * z.w[idx];
            if negative {
                x = -x;
            }
            if rabs < z.k[idx] {
                return x;
            }
            if idx == 0 {
                // Beyond the base layer: Marsaglia's exponential sampler for the tail past R,
                // with the sign taken from a bit of the rejected draw.
                loop {
                    let xx = -ZIG_INV_R * (-self.random()).ln_1p();
                    let yy = -(-self.random()).ln_1p();
                    if yy + yy > xx * xx {
                        return if (rabs >> 8) & 1 == 1 {
                            -(ZIG_R + xx)
                        } else {
                            ZIG_R + xx
                        };
                    }
                }
            }
            let y = (z.f[idx - 1] - z.f[idx]) * self.random() + z.f[idx];
            if y < (-0.5 * x * x).exp() {
                return x;
            }
        }
    }

    /// `Generator.uniform()` with the default bounds: `0 + 1 * random()`, i.e. `random()`.
    pub fn uniform(&mut self) -> f64 {
        self.random()
    }
}

/// Bytes handed out low byte first from one 32-bit draw, as numpy's 8-bit samplers do.
#[derive(Default)]
struct ByteBuffer {
    buf: u32,
    left: u8,
}

impl ByteBuffer {
    fn next(&mut self, rng: &mut Pcg64) -> u8 {
        if self.left == 0 {
            self.buf = rng.next_u32();
            self.left = 3;
        } else {
            self.buf >>= 8;
            self.left -= 1;
        }
        self.buf as u8
    }
}

/// Fills `out` with the C-order sub-block `[start, start+shape)` of a `full_shape` array of `random()` draws that begins `base` draws into the stream of `from_seed(seed)`.
///
/// Costs one O(log n) advance plus O(1) per contiguous run, so a block costs its own size, not
/// the array's. Inconsistent arguments (rank mismatch, a block outside the array, or `out` not
/// exactly the block's size) fill `out` with NaN rather than panic.
pub fn random_block(
    seed: u64,
    base: u128,
    full_shape: &[usize],
    start: &[usize],
    shape: &[usize],
    out: &mut [f64],
) {
    let nd = full_shape.len();
    let consistent = start.len() == nd
        && shape.len() == nd
        && (0..nd).all(|k| {
            start[k]
                .checked_add(shape[k])
                .is_some_and(|end| end <= full_shape[k])
        })
        && shape
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .is_some_and(|n| n == out.len());
    if !consistent {
        out.fill(f64::NAN);
        return;
    }
    if out.is_empty() {
        return;
    }
    let mut rng = Pcg64::from_seed(seed);
    let Some((&inner, outer_shape)) = shape.split_last() else {
        // A 0-d array is a single draw at `base`.
        rng.advance(base);
        rng.fill_random(out);
        return;
    };

    // C-order strides of the full array, in draws.
    let mut strides = vec![1u128; nd];
    for k in (0..nd - 1).rev() {
        strides[k] = strides[k + 1] * full_shape[k + 1] as u128;
    }
    let first: u128 = (0..nd).map(|k| start[k] as u128 * strides[k]).sum();
    rng.advance(base + first);

    // Gap from the end of one innermost run to the start of the next when the outermost index
    // that changes is `k` (all inner outer-indices wrap back to the block's start).
    let gaps: Vec<Option<Jump>> = (0..nd - 1)
        .map(|k| {
            let wrapped: u128 = (k + 1..nd - 1)
                .map(|j| (shape[j] as u128 - 1) * strides[j])
                .sum();
            let gap = strides[k] - wrapped - inner as u128;
            (gap > 0).then(|| Jump::new(gap))
        })
        .collect();

    let mut idx = vec![0usize; nd - 1];
    for run in out.chunks_exact_mut(inner) {
        rng.fill_random(run);
        // Odometer step over the outer dimensions; `k` ends at the outermost one that moved.
        let mut k = nd - 1;
        let mut moved = None;
        while k > 0 {
            k -= 1;
            idx[k] += 1;
            if idx[k] < outer_shape[k] {
                moved = Some(k);
                break;
            }
            idx[k] = 0;
        }
        match moved {
            Some(k) => {
                if let Some(j) = &gaps[k] {
                    rng.jump(j);
                }
            }
            None => break,
        }
    }
}

/// Rightmost layer edge R of the 256-layer normal ziggurat, its inverse, and the common layer
/// area V = R f(R) + ∫_R^∞ f with f(x) = exp(-x²/2), all rounded to double.
const ZIG_R: f64 = 3.654_152_885_361_009;
const ZIG_INV_R: f64 = 0.273_661_237_329_758_3;
const ZIG_V: f64 = 0.004_928_673_233_974_652;

/// Layer tables indexed by the low byte of a draw: index 0 is the base strip (with the tail),
/// 1 the top layer and 255 the layer whose edge is R.
struct Ziggurat {
    /// Acceptance thresholds on the 52-bit magnitude: 2^52 times the inner/outer edge ratio.
    k: [u64; 256],
    /// Outer edge of each layer divided by 2^52.
    w: [f64; 256],
    /// Density at each outer edge (`f[0]` is the density at 0).
    f: [f64; 256],
}

/// The ziggurat tables, derived once from R and V.
///
/// Every quantity is evaluated in double precision with correctly rounded `exp`/`ln`, edge by
/// edge from R inwards, because that is how the reference tables were produced: each edge is
/// `sqrt(-2 ln(f(x) + V/x))` of the stored density and edge of the layer below it, so the
/// sampler only matches bit for bit if the same roundings are reproduced.
fn ziggurat() -> &'static Ziggurat {
    static TABLES: OnceLock<Ziggurat> = OnceLock::new();
    TABLES.get_or_init(|| {
        let density = |x: f64| (-0.5 * x * x).exp();
        let scale = (1u64 << 52) as f64;
        let mut x = [0.0f64; 256];
        let mut f = [0.0f64; 256];
        x[255] = ZIG_R;
        for i in (1..256).rev() {
            f[i] = density(x[i]);
            if i == HALFWAY_LAYER {
                // exp(-x²/2) at this edge lies 0.498 ulp above a double; the reference tables
                // rounded it up, and every edge above this one inherits that rounding.
                f[i] = f[i].next_up();
            }
            if i > 1 {
                x[i - 1] = (-2.0 * (f[i] + ZIG_V / x[i]).ln()).sqrt();
            }
        }
        f[0] = 1.0;
        // The base strip is as wide as a layer of area V would be at height f(R).
        x[0] = ZIG_V / f[255];

        let mut k = [0u64; 256];
        k[0] = (ZIG_R / x[0] * scale).round_ties_even() as u64;
        // The top layer has no box part: every sample from it goes through the wedge test.
        k[1] = 0;
        for i in 2..256 {
            k[i] = (x[i - 1] / x[i] * scale).round_ties_even() as u64;
        }
        let mut w = [0.0f64; 256];
        for (wi, xi) in w.iter_mut().zip(x.iter()) {
            *wi = xi / scale;
        }
        Ziggurat { k, w, f }
    })
}

/// The one layer whose density is a near-halfway rounding case (see [`ziggurat`]).
const HALFWAY_LAYER: usize = 38;

#[cfg(test)]
mod tests {
    use super::*;

    // Every literal below was printed by numpy 2.4.6 (`numpy.random.default_rng`).

    fn fnv(h: u64, bits: u64) -> u64 {
        (h ^ bits).wrapping_mul(0x0000_0100_0000_01b3)
    }

    #[test]
    fn seed_sequence_and_seeded_state_match_numpy() {
        assert_eq!(
            seed_sequence_words(42),
            [
                0x9f1e_2e6d_cd54_0ab7,
                0xd578_73dc_79fb_94b6,
                0x7d28_2a1b_64d4_20b7,
                0x3365_7971_4692_d5ff
            ]
        );
        let cases: [(u64, u128, u128); 5] = [
            (
                0,
                0x1aa1b5345996452d09585eb7a69561e3,
                0x418ddadb3af71a82588133bc447873a9,
            ),
            (
                1,
                0x9c5b484bfedb756c2a6e7d6f320fbc7e,
                0x922af2da2645f895a19857b95740937b,
            ),
            (
                42,
                0xcea44f6798798f2aacbc7c9d68860ac8,
                0xfa505436c9a8416e66caf2e28d25abff,
            ),
            (
                (1 << 32) + 5,
                0x2931d0c6dbee79bfece8058fe085a345,
                0x271168ffcdb9ee72bdd751b35ac873c3,
            ),
            (
                u64::MAX,
                0xddc419442aebde794d8b0a3b048acdb0,
                0x37762aacb3cc854f4ed623c7d18951ed,
            ),
        ];
        for (seed, state, inc) in cases {
            let r = Pcg64::from_seed(seed);
            assert_eq!((r.state, r.inc), (state, inc), "seed {seed}");
        }
    }

    #[test]
    fn raw_stream_and_random_match_numpy() {
        let mut r = Pcg64::from_seed(42);
        let raw: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        assert_eq!(
            raw,
            [
                0xc621_fbcd_16d9_2688,
                0x705a_5661_a791_ffc1,
                0xdbcd_12c2_6eda_1624,
                0xb286_b60e_1600_888d,
                0x181c_01b5_3393_81eb
            ]
        );
        let mut r = Pcg64::from_seed(42);
        let mut v = [0.0; 5];
        r.fill_random(&mut v);
        assert_eq!(
            v,
            [
                0.7739560485559633,
                0.4388784397520523,
                0.8585979199113825,
                0.6973680290593639,
                0.09417734788764953
            ]
        );
        let mut r = Pcg64::from_seed(42);
        let u: Vec<f64> = (0..5).map(|_| r.uniform()).collect();
        assert_eq!(u, v);
    }

    #[test]
    fn next_u32_hands_out_low_half_then_high_half() {
        let mut r = Pcg64::from_seed(42);
        assert_eq!(r.next_u32(), 0x16d9_2688);
        assert_eq!(r.next_u32(), 0xc621_fbcd);
        assert_eq!(r.next_u32(), 0xa791_ffc1);
        // A 64-bit draw bypasses the cached high half, which is still served next.
        assert_eq!(r.next_u64(), 0xdbcd_12c2_6eda_1624);
        assert_eq!(r.next_u32(), 0x705a_5661);
    }

    #[test]
    fn integers_i64_match_numpy() {
        let mut r = Pcg64::from_seed(42);
        let mut v = [0i64; 20];
        r.integers_i64(-10, 10, &mut v);
        assert_eq!(
            v,
            [
                -9, 5, 3, -2, -2, 7, -9, 3, -6, -9, 0, 9, 4, 5, 4, 5, 0, -8, 6, -1
            ]
        );
        assert_eq!(r.random(), 0.37079802423258124);

        // Ranges that need the other paths: 64-bit Lemire, the raw 32-bit and 64-bit-plus-one
        // cases, and a single-value range that draws nothing.
        let mut r = Pcg64::from_seed(7);
        let mut wide = [0i64; 5];
        r.integers_i64(-(1 << 62), 1 << 62, &mut wide);
        assert_eq!(
            wide,
            [
                1153802028618786117,
                3663650664515581258,
                2542751686368525489,
                -2534516319769521247,
                -1843140699770607454
            ]
        );
        let mut three = [0i64; 3];
        r.integers_i64(0, 1 << 32, &mut three);
        assert_eq!(three, [1224353588, 3751883479, 3919686768]);
        r.integers_i64(0, (1 << 32) + 1, &mut three);
        assert_eq!(three, [3527149200, 3423387129, 2009765319]);
        r.integers_i64(i64::MIN, i64::MAX, &mut three);
        assert_eq!(
            three,
            [
                -3633410413283779513,
                -4087326026865880444,
                -4521857981227254033
            ]
        );
        r.integers_i64(5, 6, &mut three);
        assert_eq!(three, [5, 5, 5]);
        assert_eq!(r.random(), 0.4450763058826466);
    }

    #[test]
    fn integers_u8_match_numpy_with_a_cached_half() {
        let mut r = Pcg64::from_seed(42);
        // Three 32-bit draws leave a high half cached for the byte sampler to start from.
        let mut skip = [0i64; 3];
        r.integers_i64(-10, 10, &mut skip);
        let mut u = [0u8; 20];
        r.integers_u8(10, &mut u);
        assert_eq!(
            u,
            [3, 3, 3, 4, 1, 0, 8, 4, 7, 0, 8, 5, 5, 0, 0, 7, 5, 6, 9, 5]
        );
        let mut next = [0i64; 3];
        r.integers_i64(0, 1 << 32, &mut next);
        assert_eq!(next, [404488629, 2261209996, 4190266093]);
        assert_eq!(r.random(), 0.761139701990353);

        let mut r = Pcg64::from_seed(42);
        let mut u = [0u8; 10];
        r.integers_u8(255, &mut u);
        assert_eq!(u, [135, 37, 216, 21, 204, 250, 32, 197, 192, 254]);
    }

    #[test]
    fn normals_match_numpy_and_consume_the_same_draws() {
        let mut r = Pcg64::from_seed(42);
        let v: Vec<f64> = (0..12).map(|_| r.standard_normal()).collect();
        assert_eq!(
            v,
            [
                0.30471707975443135,
                -1.0399841062404955,
                0.7504511958064572,
                0.9405647163912139,
                -1.9510351886538364,
                -1.302179506862318,
                0.12784040316728537,
                -0.3162425923435822,
                -0.016801157504288795,
                -0.85304392757358,
                0.8793979748628286,
                0.7777919354289483
            ]
        );
        assert_eq!(r.random(), 0.6438651200806645);
    }

    #[test]
    fn many_normals_match_numpy_bit_for_bit() {
        // 200k draws visit every layer, the wedges and the tail; the FNV-1a hash of the bit
        // patterns and the following uniform pin both the values and the draw count.
        for (seed, hash, next) in [
            (42, 0xeefe_3e22_5e34_0ba3u64, 0.7198514707231856),
            (123, 0x1063_fe5e_f45e_b160, 0.151036629345641),
        ] {
            let mut r = Pcg64::from_seed(seed);
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            for _ in 0..200_000 {
                h = fnv(h, r.standard_normal().to_bits());
            }
            assert_eq!(h, hash, "seed {seed}");
            assert_eq!(r.random(), next, "seed {seed}");
        }
    }

    #[test]
    fn ziggurat_tables_match_numpy_spot_checks() {
        let z = ziggurat();
        assert_eq!(z.k[0], 0x000E_F33D_8025_EF6A);
        assert_eq!(z.k[1], 0);
        assert_eq!(z.k[2], 0x000C_08BE_98FB_C6A8);
        assert_eq!(z.k[38], 0x000F_D49A_9990_B478);
        assert_eq!(z.k[255], 0x000F_1A5A_4B33_1C4A);
        assert_eq!(z.w[0], 8.683627060801306e-16);
        assert_eq!(z.w[1], 4.779330175727737e-17);
        assert_eq!(z.w[37], 1.9390512930625104e-16);
        assert_eq!(z.w[255], 8.113849337656484e-16);
        assert_eq!(z.f[1], 0.9771017012676716);
        assert_eq!(z.f[38], 0.6773880362187735);
        assert_eq!(z.f[255], 0.001260285930498598);
    }

    #[test]
    fn advance_matches_numpy_and_clears_the_cached_half() {
        let mut r = Pcg64::from_seed(42);
        r.advance(1_000_003);
        assert_eq!(r.random(), 0.33601650799368576);

        let mut r = Pcg64::from_seed(42);
        let mut one = [0i64; 1];
        r.integers_i64(0, 10, &mut one);
        r.advance(3);
        let mut three = [0i64; 3];
        r.integers_i64(0, 1000, &mut three);
        assert_eq!(three, [201, 94, 526]);
    }

    #[test]
    fn advance_and_jump_equal_stepping() {
        for n in [0u128, 1, 2, 3, 7, 64, 1000, 4097] {
            let mut stepped = Pcg64::from_seed(9);
            for _ in 0..n {
                stepped.next_u64();
            }
            let mut advanced = Pcg64::from_seed(9);
            advanced.advance(n);
            let mut jumped = Pcg64::from_seed(9);
            jumped.jump(&Jump::new(n));
            assert_eq!(advanced.state, stepped.state, "advance {n}");
            assert_eq!(jumped.state, stepped.state, "jump {n}");
            assert_eq!(advanced.next_u64(), stepped.next_u64());
        }
        // A jump is seed-independent and composes: 5 jumps of 1234 == advance(6170).
        let j = Jump::new(1234);
        let mut a = Pcg64::from_seed(3);
        for _ in 0..5 {
            a.jump(&j);
        }
        let mut b = Pcg64::from_seed(3);
        b.advance(6170);
        assert_eq!(a.next_u64(), b.next_u64());
        // The full period wraps back to the start.
        let mut c = Pcg64::from_seed(3);
        let start = c.state;
        c.advance(u128::MAX);
        c.step();
        assert_eq!(c.state, start);
    }

    #[test]
    fn demo_sequence_matches_numpy() {
        // Sizes of the demo's six big `random` arrays, in draw order, with their first values.
        let arrays: [(u128, [f64; 3]); 6] = [
            (
                100_000_000,
                [0.7739560485559633, 0.4388784397520523, 0.8585979199113825],
            ),
            (
                90_000,
                [0.4736740866748671, 0.684167296393307, 0.852417457964301],
            ),
            (
                1_000_000,
                [
                    0.7029429707022864,
                    0.36179439223200005,
                    0.0022522195230038067,
                ],
            ),
            (
                2_500,
                [0.3698032912574729, 0.1827148390008282, 0.8271212256147155],
            ),
            (
                125_000,
                [
                    0.35516130275770175,
                    0.054414528935697315,
                    0.2677447041378017,
                ],
            ),
            (
                312_500_000,
                [0.4408248264593838, 0.7081810161375924, 0.2428973533421508],
            ),
        ];
        let lasts = [
            0.1353568388398273,
            0.4027276241434151,
            0.10934865045040665,
            0.20816907078814872,
            0.28162563946716657,
            0.939900077110483,
        ];
        let mut rng = Pcg64::from_seed(42);
        for ((len, first), last) in arrays.iter().zip(lasts) {
            let mut at_start = rng.clone();
            let mut head = [0.0; 3];
            at_start.fill_random(&mut head);
            assert_eq!(&head, first);
            rng.advance(len - 1);
            assert_eq!(rng.random(), last);
        }

        let mut ints = vec![0i64; 10_000];
        rng.integers_i64(-10, 10, &mut ints);
        assert_eq!(ints[..5], [9, 8, 9, -3, -7]);
        assert_eq!(ints[9_995..], [8, -9, 4, -3, 0]);
        assert_eq!(ints.iter().sum::<i64>(), -5644);

        let mut tiny = [0.0; 10];
        rng.fill_random(&mut tiny);
        assert_eq!(
            tiny[..3],
            [0.3175451829407463, 0.2542731886829882, 0.593895174092614]
        );
        let mut short_int = [0u8; 100];
        rng.integers_u8(10, &mut short_int);
        assert_eq!(
            short_int[..20],
            [5, 9, 3, 3, 8, 0, 0, 6, 5, 9, 5, 7, 8, 9, 3, 0, 2, 1, 6, 5]
        );
        assert_eq!(short_int.iter().map(|&b| u32::from(b)).sum::<u32>(), 448);
        let mut short_float = [0.0; 100];
        rng.fill_random(&mut short_float);
        assert_eq!(
            short_float[..3],
            [0.053270493200422764, 0.8720061204820203, 0.5393129743894212]
        );
        let mut long = vec![0.0; 100_000];
        rng.fill_random(&mut long);
        assert_eq!(
            long[..3],
            [0.7788967793947368, 0.5876016658745274, 0.510592181496896]
        );
        assert_eq!(long[99_999], 0.21504239754506882);
        let mut real = [0.0; 1500];
        rng.fill_random(&mut real);
        assert_eq!(
            real[..3],
            [0.15101631043733954, 0.22701063798096932, 0.9767613572552718]
        );
        let mut imag = [0.0; 1500];
        rng.fill_random(&mut imag);
        assert_eq!(
            imag[..3],
            [0.420094304082694, 0.004469918139087814, 0.6441219504167345]
        );
        let normal: Vec<f64> = (0..12).map(|_| rng.standard_normal()).collect();
        assert_eq!(
            normal,
            [
                -0.7971001021007251,
                1.9379766332733719,
                -0.2010741450059287,
                2.2536579228337885,
                0.6987814578327298,
                -0.7833254006430366,
                -2.5919767213010574,
                -0.07704818460056,
                1.2071638792905361,
                -1.7206829472388565,
                -3.2090990244741935,
                -0.2822065929819198
            ]
        );
        let uniform: Vec<f64> = (0..12).map(|_| rng.uniform()).collect();
        assert_eq!(
            uniform,
            [
                0.9249987535982476,
                0.8206219046876209,
                0.6970013860800957,
                0.3289628336177749,
                0.2962547531696976,
                0.35858768187353574,
                0.7464495871012328,
                0.05958547163825345,
                0.6035812633358439,
                0.6491988334227358,
                0.9933774836561451,
                0.5906110193419464
            ]
        );
        let mut sparse = vec![0.0; 10_000];
        rng.fill_random(&mut sparse);
        assert_eq!(
            sparse[..3],
            [0.12271525464646982, 0.3066017077136669, 0.8024283687501808]
        );
        let mut flat = [0.0; 100];
        rng.fill_random(&mut flat);
        assert_eq!(
            flat[..3],
            [0.31959661899892533, 0.9009727067267164, 0.6434950036224684]
        );
        assert_eq!(flat[99], 0.044551386660356296);
    }

    #[test]
    fn random_block_of_the_big_demo_array_matches_numpy() {
        let mut out = [0.0; 3];
        random_block(42, 0, &[10_000, 10_000], &[5_000, 7_000], &[1, 3], &mut out);
        assert_eq!(
            out,
            [0.562434610853627, 0.3641945308790637, 0.422351385383513]
        );
    }

    /// The whole array drawn sequentially, for comparing blocks against.
    fn sequential(seed: u64, base: u128, len: usize) -> Vec<f64> {
        let mut r = Pcg64::from_seed(seed);
        r.advance(base);
        let mut full = vec![0.0; len];
        r.fill_random(&mut full);
        full
    }

    #[test]
    fn random_block_equals_the_sequential_2d_array() {
        let (rows, cols) = (37usize, 53usize);
        let full = sequential(3, 11, rows * cols);
        let (start, shape) = ([5usize, 7usize], [15usize, 33usize]);
        let mut block = vec![0.0; shape[0] * shape[1]];
        random_block(3, 11, &[rows, cols], &start, &shape, &mut block);
        for i in 0..shape[0] {
            for j in 0..shape[1] {
                assert_eq!(
                    block[i * shape[1] + j],
                    full[(start[0] + i) * cols + start[1] + j],
                    "({i}, {j})"
                );
            }
        }
    }

    #[test]
    fn random_block_equals_the_sequential_3d_array() {
        let dims = [6usize, 9, 11];
        let full = sequential(5, 1_000, dims.iter().product());
        for (start, shape) in [
            ([1usize, 2, 3], [4usize, 5, 6]),
            ([0, 0, 0], [6, 9, 11]),
            ([2, 0, 0], [3, 9, 11]),
            ([5, 8, 10], [1, 1, 1]),
            ([0, 3, 0], [6, 2, 11]),
        ] {
            let mut block = vec![0.0; shape.iter().product()];
            random_block(5, 1_000, &dims, &start, &shape, &mut block);
            let mut n = 0;
            for i in 0..shape[0] {
                for j in 0..shape[1] {
                    for k in 0..shape[2] {
                        let at = ((start[0] + i) * dims[1] + start[1] + j) * dims[2] + start[2] + k;
                        assert_eq!(block[n], full[at], "{start:?} {shape:?} ({i}, {j}, {k})");
                        n += 1;
                    }
                }
            }
        }
    }

    #[test]
    fn random_block_handles_degenerate_arguments() {
        let mut scalar = [0.0];
        random_block(42, 2, &[], &[], &[], &mut scalar);
        assert_eq!(scalar[0], 0.8585979199113825);
        let mut empty: [f64; 0] = [];
        random_block(42, 0, &[4, 4], &[1, 1], &[0, 3], &mut empty);
        let mut bad = [0.0; 4];
        random_block(42, 0, &[4, 4], &[3, 3], &[2, 2], &mut bad);
        assert!(bad.iter().all(|v| v.is_nan()));
        let mut short = [0.0; 3];
        random_block(42, 0, &[4, 4], &[0, 0], &[2, 2], &mut short);
        assert!(short.iter().all(|v| v.is_nan()));
    }
}
