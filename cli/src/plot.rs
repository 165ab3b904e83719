//! `--plot FILE.svg`: the pool (and its warm tier) over time and each user's time to ready, drawn with
//! plotters' SVG backend.

use std::path::Path;

use plotters::prelude::*;

use warmpool_sim::simulate::{PoolSample, SimRun};

/// Draws two panels into `path`: the pool (ready, all instances, desired) over the
/// hours, and each signup's time to ready (warm and cold marked apart).
pub fn draw(path: &Path, title: &str, run: &SimRun) -> Result<(), String> {
    draw_inner(path, title, run).map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

fn draw_inner(path: &Path, title: &str, run: &SimRun) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(400);
    let hours = |t: f64| t / 3600.0;
    let end_h = run
        .samples
        .last()
        .map(|s| hours(s.t_s))
        .into_iter()
        .chain(run.users.iter().map(|u| hours(u.signup_s)))
        .fold(1.0_f64, f64::max);

    let max_pool = run
        .samples
        .iter()
        .map(|s| s.live.max(s.desired).max(s.warm_running + s.warm_stopped))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut pool = ChartBuilder::on(&top)
        .caption("pool instances", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..end_h, 0.0..f64::from(max_pool) * 1.1)?;
    pool.configure_mesh().x_desc("hours").y_desc("instances").draw()?;
    let series = |f: fn(&PoolSample) -> u32| {
        run.samples.iter().map(move |s| (hours(s.t_s), f64::from(f(s)))).collect::<Vec<_>>()
    };
    pool.draw_series(LineSeries::new(series(|s| s.desired), BLUE.mix(0.6)))?
        .label("desired")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.mix(0.6)));
    pool.draw_series(LineSeries::new(series(|s| s.live), BLACK))?
        .label("all (cost)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    pool.draw_series(LineSeries::new(series(|s| s.ready), GREEN.stroke_width(2)))?
        .label("ready to claim")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN.stroke_width(2)));
    if run.samples.iter().any(|s| s.warm_running + s.warm_stopped > 0) {
        let stopped = RGBColor(128, 0, 160);
        pool.draw_series(LineSeries::new(series(|s| s.warm_stopped), stopped.stroke_width(2)))?
            .label("warm tier: stopped (volume cost only)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], stopped.stroke_width(2)));
        pool.draw_series(LineSeries::new(series(|s| s.warm_running), RED.mix(0.6)))?
            .label("warm tier: preparing or stopping (running)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.mix(0.6)));
    }
    pool.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;

    let max_ready = run.users.iter().filter_map(|u| u.ready_after_s).fold(10.0_f64, f64::max);
    let mut wait = ChartBuilder::on(&bottom)
        .caption("time to ready per signup (log scale)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..end_h, (1.0..max_ready * 1.5).log_scale())?;
    wait.configure_mesh().x_desc("signup at (hours)").y_desc("seconds").draw()?;
    let points = |warm: bool| {
        run.users
            .iter()
            .filter(move |u| u.warm == warm)
            .filter_map(|u| u.ready_after_s.map(|r| (hours(u.signup_s), r.max(1.0))))
    };
    wait.draw_series(points(true).map(|p| Circle::new(p, 2, GREEN.filled())))?
        .label("warm")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, GREEN.filled()));
    wait.draw_series(points(false).map(|p| Circle::new(p, 3, RED.filled())))?
        .label("cold")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, RED.filled()));
    wait.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
