//! Small dense linear algebra in f64 (no BLAS): Cholesky factorisation and solve of a
//! symmetric positive-definite system, used by fold-in and the reference solver.

/// Solve `A x = b` for symmetric positive-definite `A` (`n × n`, row-major; only the
/// lower triangle is read). `A` is overwritten by its Cholesky factor `L` (`A = L Lᵀ`).
///
/// Returns `None` if `A` is not (numerically) positive definite — a pivot `<= 0` — or
/// holds NaN (a NaN pivot also fails the `> 0` test), or if the shapes are wrong.
pub fn cholesky_solve(a: &mut [f64], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    if a.len() != n * n {
        return None;
    }
    // Factorise: for each column j, L_jj = sqrt(A_jj − Σ_k<j L_jk²),
    // L_ij = (A_ij − Σ_k<j L_ik L_jk) / L_jj for i > j.
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    // Forward substitution L y = b.
    let mut x = b.to_vec();
    for i in 0..n {
        let mut s = x[i];
        for k in 0..i {
            s -= a[i * n + k] * x[k];
        }
        x[i] = s / a[i * n + i];
    }
    // Back substitution Lᵀ x = y.
    for i in (0..n).rev() {
        let mut s = x[i];
        for k in i + 1..n {
            s -= a[k * n + i] * x[k];
        }
        x[i] = s / a[i * n + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_spd_system() {
        // A = M Mᵀ + I for a fixed M.
        let n = 5;
        let m: Vec<f64> = (0..n * n)
            .map(|k| ((k * 7 % 11) as f64 - 5.0) / 3.0)
            .collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| m[i * n + k] * m[j * n + k]).sum::<f64>()
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        let x_true: Vec<f64> = (0..n).map(|i| i as f64 - 1.5).collect();
        let b: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| a[i * n + j] * x_true[j]).sum())
            .collect();
        let x = cholesky_solve(&mut a.clone(), &b).unwrap();
        for i in 0..n {
            assert!((x[i] - x_true[i]).abs() < 1e-10, "{x:?}");
        }
    }

    #[test]
    fn rejects_indefinite_and_nan() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert!(cholesky_solve(&mut a, &[1.0, 1.0]).is_none());
        let mut a = vec![f64::NAN, 0.0, 0.0, 1.0];
        assert!(cholesky_solve(&mut a, &[1.0, 1.0]).is_none());
        let mut a = vec![1.0; 3];
        assert!(cholesky_solve(&mut a, &[1.0, 1.0]).is_none());
    }
}
