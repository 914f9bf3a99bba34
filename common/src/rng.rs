//! numpy-compatible random numbers: PCG64 seeded through SeedSequence exactly like
//! `numpy.random.default_rng(seed)`, numpy's algorithms for the distributions the demo draws,
//! and O(log n) jumps so any chunk of a huge random array can be regenerated on demand.

/// The 128-bit LCG multiplier of PCG64.
const MULT: u128 = 0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645;
/// numpy's PCG64 (128-bit LCG, XSL-RR output), with numpy's buffering of 32-bit halves.
#[derive(Clone, Debug)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
    has_u32: bool,
    u32_buf: u32,
}
/// A precomputed jump of a fixed number of draws (an affine map of the state).
#[derive(Clone, Copy, Debug)]
pub struct Jump {
    mult: u128,
    plus: u128,
}
/// numpy's SeedSequence(seed).generate_state(4, uint64): the hash-mixed entropy pool.
fn seed_words(seed: u64) -> [u64; 4] {
    const INIT_A: u32 = 0x43b0d7e5;
    const MULT_A: u32 = 0x931e8875;
    const INIT_B: u32 = 0x8b51f9dd;
    const MULT_B: u32 = 0x58f38ded;
    const MIX_L: u32 = 0xca01f9dd;
    const MIX_R: u32 = 0x4973f715;
    let mut entropy = vec![seed as u32];
    if seed >> 32 != 0 {
        entropy.push((seed >> 32) as u32);
    }
    let mut hc = INIT_A;
    let hashmix = |v: u32, hc: &mut u32| {
        let mut v = v ^ *hc;
        *hc = hc.wrapping_mul(MULT_A);
        v = v.wrapping_mul(*hc);
        v ^ (v >> 16)
    };
    let mix = |x: u32, y: u32| {
        let r = MIX_L.wrapping_mul(x).wrapping_sub(MIX_R.wrapping_mul(y));
        r ^ (r >> 16)
    };
    let mut pool = [0u32; 4];
    for (i, slot) in pool.iter_mut().enumerate() {
        *slot = hashmix(*entropy.get(i).unwrap_or(&0), &mut hc);
    }
    for s in 0..4 {
        for d in 0..4 {
            if s != d {
                let h = hashmix(pool[s], &mut hc);
                pool[d] = mix(pool[d], h);
            }
        }
    }
    let mut hb = INIT_B;
    let mut words = [0u32; 8];
    for (i, w) in words.iter_mut().enumerate() {
        let mut v = pool[i % 4] ^ hb;
        hb = hb.wrapping_mul(MULT_B);
        v = v.wrapping_mul(hb);
        *w = v ^ (v >> 16);
    }
    let mut out = [0u64; 4];
    for (i, o) in out.iter_mut().enumerate() {
        *o = words[2 * i] as u64 | (words[2 * i + 1] as u64) << 32;
    }
    out
}
impl Jump {
    /// The affine map of `delta` LCG steps for increment `inc` (square-and-multiply).
    fn with_inc(mut delta: u128, inc: u128) -> Self {
        let (mut am, mut ap, mut cm, mut cp) = (1u128, 0u128, MULT, inc);
        while delta > 0 {
            if delta & 1 == 1 {
                am = am.wrapping_mul(cm);
                ap = ap.wrapping_mul(cm).wrapping_add(cp);
            }
            cp = cm.wrapping_add(1).wrapping_mul(cp);
            cm = cm.wrapping_mul(cm);
            delta >>= 1;
        }
        Jump { mult: am, plus: ap }
    }
}
impl Pcg64 {
    /// The generator of `numpy.random.default_rng(seed)`.
    pub fn from_seed(seed: u64) -> Self {
        let w = seed_words(seed);
        let initstate = (w[0] as u128) << 64 | w[1] as u128;
        let initseq = (w[2] as u128) << 64 | w[3] as u128;
        let mut r = Pcg64 {
            state: 0,
            inc: (initseq << 1) | 1,
            has_u32: false,
            u32_buf: 0,
        };
        r.step();
        r.state = r.state.wrapping_add(initstate);
        r.step();
        r
    }
    fn step(&mut self) {
        self.state = self.state.wrapping_mul(MULT).wrapping_add(self.inc);
    }
    /// The next 64-bit draw.
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let rot = (s >> 122) as u32;
        (((s >> 64) as u64) ^ (s as u64)).rotate_right(rot)
    }
    /// The next 32-bit draw: the low half of a 64-bit draw, then its high half.
    pub fn next_u32(&mut self) -> u32 {
        if self.has_u32 {
            self.has_u32 = false;
            return self.u32_buf;
        }
        let n = self.next_u64();
        self.has_u32 = true;
        self.u32_buf = (n >> 32) as u32;
        n as u32
    }
    /// Skips `delta` 64-bit draws (clears the 32-bit buffer, as numpy's `advance` does).
    pub fn advance(&mut self, delta: u128) {
        let j = Jump::with_inc(delta, self.inc);
        self.state = j.mult.wrapping_mul(self.state).wrapping_add(j.plus);
        self.has_u32 = false;
    }
    /// A reusable jump of `delta` draws for this generator's stream.
    pub fn jump_of(&self, delta: u128) -> Jump {
        Jump::with_inc(delta, self.inc)
    }
    /// Applies a jump made by [`Pcg64::jump_of`] in O(1).
    pub fn jump(&mut self, j: &Jump) {
        self.state = j.mult.wrapping_mul(self.state).wrapping_add(j.plus);
    }
    /// `Generator.random()`: 53 random bits in [0, 1).
    pub fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9007199254740992.0)
    }
    /// Fills `out` with `random()` draws.
    pub fn fill_random(&mut self, out: &mut [f64]) {
        for v in out {
            *v = self.random();
        }
    }
    /// `Generator.integers(low, high, size=n)` for int64 with a range that fits in 32 bits
    /// (numpy then uses Lemire's method on buffered 32-bit draws). Wider ranges, which numpy
    /// serves from 64-bit draws, are not needed by the demo and are clamped to 32 bits.
    pub fn integers_i64(&mut self, low: i64, high: i64, out: &mut [i64]) {
        let rng = high
            .saturating_sub(low)
            .saturating_sub(1)
            .clamp(0, u32::MAX as i64 - 1) as u64;
        let excl = (rng + 1) as u32;
        for v in out.iter_mut() {
            let mut m = self.next_u32() as u64 * excl as u64;
            let mut left = m as u32;
            if left < excl {
                let t = (u32::MAX - rng as u32) % excl;
                while left < t {
                    m = self.next_u32() as u64 * excl as u64;
                    left = m as u32;
                }
            }
            *v = low + (m >> 32) as i64;
        }
    }
    /// `Generator.integers(high, size=n, dtype=uint8)`: Lemire's method on bytes taken from
    /// buffered 32-bit draws, as numpy does for 8-bit types.
    pub fn integers_u8(&mut self, high: u8, out: &mut [u8]) {
        let rng = high.saturating_sub(1);
        let excl = rng as u16 + 1;
        let (mut buf, mut bcnt) = (0u32, 0);
        let mut draw = |s: &mut Self| -> u8 {
            if bcnt == 0 {
                buf = s.next_u32();
                bcnt = 3;
            } else {
                buf >>= 8;
                bcnt -= 1;
            }
            buf as u8
        };
        for v in out.iter_mut() {
            let mut m = draw(self) as u16 * excl;
            let mut left = m as u8;
            if (left as u16) < excl {
                let t = (u8::MAX - rng) % excl as u8;
                while left < t {
                    m = draw(self) as u16 * excl;
                    left = m as u8;
                }
            }
            *v = (m >> 8) as u8;
        }
    }
    /// A standard normal draw with numpy's 256-layer ziggurat (one 64-bit draw 99% of the time).
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
                // The tail beyond r, sampled by Marsaglia's exponential method.
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
            } else if (z.f[idx - 1] - z.f[idx]) * self.random() + z.f[idx] < (-0.5 * x * x).exp() {
                return x;
            }
        }
    }
    /// `Generator.uniform()` with the default bounds [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.random()
    }
}
/// Fills `out` with the C-order block `[start, start + shape)` of a `full_shape` array of
/// `random()` draws that begins `base` draws into the stream of `from_seed(seed)`: one jump to
/// each contiguous run, so a block costs its own size, not the array's.
pub fn random_block(
    seed: u64,
    base: u128,
    full_shape: &[usize],
    start: &[usize],
    shape: &[usize],
    out: &mut [f64],
) {
    let nd = full_shape.len();
    let mut cur = Pcg64::from_seed(seed);
    cur.advance(base);
    if nd == 0 {
        if let Some(v) = out.first_mut() {
            *v = cur.random();
        }
        return;
    }
    let mut strides = vec![1u128; nd];
    for i in (0..nd - 1).rev() {
        strides[i] = strides[i + 1] * full_shape[i + 1] as u128;
    }
    let inner = shape[nd - 1];
    let rows: usize = shape[..nd - 1].iter().product();
    let mut idx = vec![0usize; nd - 1];
    let mut o = 0;
    // Position in the array's stream (relative to `base`) that `cur` is at.
    let mut pos: u128 = 0;
    for _ in 0..rows {
        let mut off = start[nd - 1] as u128;
        for k in 0..nd - 1 {
            off += (start[k] + idx[k]) as u128 * strides[k];
        }
        if off > pos {
            cur.advance(off - pos);
            pos = off;
        }
        for v in &mut out[o..o + inner] {
            *v = cur.random();
        }
        o += inner;
        pos += inner as u128;
        let mut k = nd - 1;
        while k > 0 {
            k -= 1;
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}

/// Rightmost layer boundary, its inverse and the layer area of the 256-layer normal
/// ziggurat (Marsaglia & Tsang), with the digits numpy's tables were derived from.
const ZIG_R: f64 = 3.654_152_885_361_009;
const ZIG_INV_R: f64 = 0.273_661_237_329_758_3;
const ZIG_V: f64 = 0.004_928_673_233_974_652;

/// Layer tables: acceptance thresholds `k` (52-bit), widths `w` and densities `f`.
struct Ziggurat {
    k: [u64; 256],
    w: [f64; 256],
    f: [f64; 256],
}

fn pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp()
}

/// Builds the tables in f64 exactly as numpy's were derived (layer edges from the tail in,
/// thresholds rounded to nearest), so draws match numpy bit for bit.
fn ziggurat() -> &'static Ziggurat {
    static TABLES: std::sync::OnceLock<Ziggurat> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let scale = (1u64 << 52) as f64;
        // Layer edges from the tail inwards; the innermost edge is 0.
        let mut x = [0.0f64; 256];
        x[0] = ZIG_R;
        for i in 1..255 {
            x[i] = (-2.0 * (pdf(x[i - 1]) + ZIG_V / x[i - 1]).ln()).sqrt();
        }
        x.reverse();
        let mut z = Ziggurat {
            k: [0; 256],
            w: [0.0; 256],
            f: [0.0; 256],
        };
        for i in 1..256 {
            z.k[i] = (x[i - 1] / x[i] * scale).round() as u64;
        }
        z.k[0] = (ZIG_R * pdf(ZIG_R) / ZIG_V * scale).round() as u64;
        for (i, xi) in x.iter().enumerate() {
            z.w[i] = xi / scale;
            z.f[i] = pdf(*xi);
        }
        z.w[0] = ZIG_V / pdf(ZIG_R) / scale;
        z
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by numpy 2.4 for `numpy.random.default_rng(42)`.

    #[test]
    fn seeding_and_raw_stream_match_numpy() {
        let mut r = Pcg64::from_seed(42);
        assert_eq!(r.next_u64(), 0xc621_fbcd_16d9_2688);
        assert_eq!(r.next_u64(), 0x705a_5661_a791_ffc1);
        let mut r = Pcg64::from_seed(42);
        assert_eq!(r.random(), 0.7739560485559633);
        assert_eq!(r.random(), 0.4388784397520523);
    }

    #[test]
    fn bounded_integers_match_numpy() {
        let mut r = Pcg64::from_seed(42);
        let mut v = [0i64; 12];
        r.integers_i64(-10, 10, &mut v);
        assert_eq!(v, [-9, 5, 3, -2, -2, 7, -9, 3, -6, -9, 0, 9]);
        let mut r = Pcg64::from_seed(42);
        let mut skip = [0.0; 3];
        r.fill_random(&mut skip);
        let mut u = [0u8; 12];
        r.integers_u8(10, &mut u);
        assert_eq!(u, [5, 5, 0, 0, 7, 5, 6, 9, 5, 5, 1, 7]);
    }

    #[test]
    fn normals_match_numpy_and_consume_the_same_draws() {
        let mut r = Pcg64::from_seed(42);
        assert_eq!(r.standard_normal(), 0.30471707975443135);
        assert_eq!(r.standard_normal(), -1.0399841062404955);
        assert_eq!(r.random(), 0.8585979199113825);
    }

    #[test]
    fn advance_equals_stepping_and_jumps() {
        let mut a = Pcg64::from_seed(42);
        a.advance(1_000_003);
        assert_eq!(a.random(), 0.33601650799368576);
        let mut b = Pcg64::from_seed(7);
        let mut c = b.clone();
        for _ in 0..1000 {
            b.next_u64();
        }
        c.advance(1000);
        assert_eq!(b.next_u64(), c.next_u64());
        let mut d = Pcg64::from_seed(7);
        let j = d.jump_of(1001);
        d.jump(&j);
        assert_eq!(d.next_u64(), b.next_u64());
    }

    #[test]
    fn random_block_equals_the_sequential_array() {
        let (rows, cols) = (37usize, 53usize);
        let mut r = Pcg64::from_seed(3);
        r.advance(11);
        let mut full = vec![0.0; rows * cols];
        r.fill_random(&mut full);
        let (start, shape) = ([5usize, 7usize], [15usize, 33usize]);
        let mut block = vec![0.0; shape[0] * shape[1]];
        random_block(3, 11, &[rows, cols], &start, &shape, &mut block);
        for i in 0..shape[0] {
            for j in 0..shape[1] {
                assert_eq!(
                    block[i * shape[1] + j],
                    full[(start[0] + i) * cols + start[1] + j]
                );
            }
        }
    }
}
