//! numpy-compatible random numbers: PCG64 seeded like `default_rng(seed)`, with jumps, so the demo regenerates any chunk on demand.
const MULT: u128 = 0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645;
#[derive(Clone, Debug)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
    has_u32: bool,
    u32_buf: u32,
}
#[derive(Clone, Copy, Debug)]
pub struct Jump {
    mult: u128,
    plus: u128,
}
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
    pub fn new(delta: u128) -> Self {
        Self::with_inc(delta, 0)
    }
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
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let rot = (s >> 122) as u32;
        (((s >> 64) as u64) ^ (s as u64)).rotate_right(rot)
    }
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
    pub fn advance(&mut self, delta: u128) {
        let j = Jump::with_inc(delta, self.inc);
        self.state = j.mult.wrapping_mul(self.state).wrapping_add(j.plus);
        self.has_u32 = false;
    }
    pub fn jump(&mut self, j: &Jump) {
        self.state = j.mult.wrapping_mul(self.state).wrapping_add(j.plus);
    }
    pub fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9007199254740992.0)
    }
    pub fn fill_random(&mut self, out: &mut [f64]) {
        for v in out {
            *v = self.random();
        }
    }
    pub fn integers_i64(&mut self, low: i64, high: i64, out: &mut [i64]) {
        let rng = (high - low - 1) as u64;
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
    pub fn integers_u8(&mut self, high: u8, out: &mut [u8]) {
        let rng = high - 1;
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
    pub fn uniform(&mut self) -> f64 {
        self.random()
    }
}
pub fn random_block(
    seed: u64,
    base: u128,
    full_shape: &[usize],
    start: &[usize],
    shape: &[usize],
    out: &mut [f64],
) {
    let nd = full_shape.len();
    let mut r = Pcg64::from_seed(seed);
    if nd == 0 {
        r.advance(base);
        if let Some(v) = out.first_mut() {
            *v = r.random();
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
    let mut pos: u128 = 0;
    let mut cur = r.clone();
    cur.advance(base);
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
    let _ = &mut r;
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
