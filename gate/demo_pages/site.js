/* デンタルキャリア・デモ: the site's own script, served first-party.
 * Keeps "気になる" (saved) jobs in localStorage and reports saves to the analytics and ad tags
 * the site uses. It calls gtag() and fbq() directly, as many real sites do, so a proxy that
 * removes those tags has to leave harmless stand-ins behind or this script breaks. */
(function () {
  'use strict';
  var KEY = 'demo_saved_jobs';

  function savedJobs() {
    try { return JSON.parse(window.localStorage.getItem(KEY) || '[]'); } catch (e) { return []; }
  }

  function paint() {
    var ids = savedJobs();
    var buttons = document.querySelectorAll('[data-save-job]');
    for (var i = 0; i < buttons.length; i++) {
      var on = ids.indexOf(buttons[i].getAttribute('data-save-job')) >= 0;
      buttons[i].setAttribute('aria-pressed', on ? 'true' : 'false');
      buttons[i].textContent = on ? '保存済み' : '気になる';
    }
    var count = document.getElementById('saved-count');
    if (count) count.textContent = String(ids.length);
  }

  document.addEventListener('click', function (event) {
    var button = event.target.closest ? event.target.closest('[data-save-job]') : null;
    if (!button) return;
    var id = button.getAttribute('data-save-job');
    var ids = savedJobs();
    var at = ids.indexOf(id);
    if (at >= 0) {
      ids.splice(at, 1);
    } else {
      ids.push(id);
      gtag('event', 'add_to_wishlist', { items: [{ item_id: id }] });
      fbq('track', 'AddToWishlist', { content_ids: [id], content_type: 'product' });
    }
    try { window.localStorage.setItem(KEY, JSON.stringify(ids)); } catch (e) { /* private mode */ }
    paint();
  });

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', paint);
  } else {
    paint();
  }
})();
