/* essqpv dashboard — "Ce que change la nouvelle carte" (2015 → 2024).
 *
 * Reads the stored, protected answer of the publication (GET /api/transition/<code>, or
 * donnees/<millesime>/transition/<code>.json on a published site) each time the dashboard
 * shows a territory (event "essqpv:territoire" sent by app.js). "s" = secret statistique,
 * "—" = not published at this level.
 */
(function () {
  "use strict";

  var corps = document.body;
  if (corps.dataset.transition !== "oui") { return; }
  var MODE = corps.dataset.mode === "statique" ? "statique" : "api";
  var bloc = document.getElementById("bloc-transition");
  var choixDetail = document.getElementById("choix-transition");
  var choixMesure = document.getElementById("choix-transition-mesure");
  var NIVEAUX = ["france", "region", "departement", "epci", "commune"];
  var ZONES = ["entrant", "sortant", "maintenu", "qpv2015", "qpv2024"];
  var fmt = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 0 });
  var memoire = {};
  var courant = null;
  var jeton = 0;

  function url(code, millesime) {
    var f = String(code).replace(/:/g, "_");
    return MODE === "api"
      ? "/api/transition/" + encodeURIComponent(code) + (millesime ? "?millesime=" + encodeURIComponent(millesime) : "")
      : "donnees/" + millesime + "/transition/" + f + ".json";
  }
  function lire(u) {
    if (!memoire[u]) {
      memoire[u] = fetch(u, { headers: { Accept: "application/json" } }).then(function (r) {
        if (!r.ok) { throw new Error("Erreur " + r.status); }
        return r.json();
      });
      memoire[u].catch(function () { delete memoire[u]; });
    }
    return memoire[u];
  }
  function el(nom, texte, classe) {
    var e = document.createElement(nom);
    if (texte !== undefined && texte !== null) { e.textContent = texte; }
    if (classe) { e.className = classe; }
    return e;
  }
  function vider(e) { while (e.firstChild) { e.removeChild(e.firstChild); } return e; }

  function texte(ligne, mesure, zone) {
    var valeurs = ligne[mesure];
    if (valeurs === null || valeurs === undefined) { return "—"; }
    if (mesure === "salaries" && ligne.secret && ligne.secret[zone]) { return "s"; }
    var v = valeurs[zone];
    if (v === null || v === undefined) { return "n.c."; }
    return fmt.format(v);
  }

  function afficher() {
    var r = courant;
    if (!r) { return; }
    var detail = choixDetail.value;
    var mesure = choixMesure.value;
    var corpsTable = vider(bloc.querySelector("#table-transition tbody"));
    r.lignes.forEach(function (ligne) {
      if (ligne.dimension !== "ensemble" && ligne.dimension !== detail) { return; }
      var tr = el("tr");
      var th = el("th", ligne.libelle);
      th.setAttribute("scope", "row");
      if (ligne.dimension === "ensemble") { tr.className = "total"; }
      tr.appendChild(th);
      ZONES.forEach(function (z) {
        var td = el("td", texte(ligne, mesure, z), "nombre");
        if (td.textContent === "s") { td.title = "secret statistique (" + ligne.secret[z] + ")"; }
        tr.appendChild(td);
      });
      corpsTable.appendChild(tr);
    });
    var aide = document.getElementById("transition-aide");
    aide.textContent = "Établissements de l'ESS localisés (périmètre strict) selon les deux cartes des quartiers prioritaires : "
      + "2015 (décret n° 2014-1750) et 2024 (décret n° 2023-1314). Millésime " + r.millesime
      + (r.couverture ? " — " + r.couverture + " : aucun chiffre n'est calculé (ce n'est pas zéro)." : ".")
      + (mesure === "salaries" && !r.salaries_par_ligne ? " Salariés publiés en tout seulement à ce niveau." : "");
    var qpv = document.getElementById("transition-qpv");
    var n = r.qpv_nouveaux.length, s = r.qpv_sortis.length;
    qpv.textContent = fmt.format(n) + " quartier" + (n > 1 ? "s" : "") + " 2024 sans prédécesseur en 2015"
      + (n ? " (" + r.qpv_nouveaux.slice(0, 8).map(function (q) { return q.nom_qp + " " + q.code_qp; }).join(", ") + (n > 8 ? "…" : "") + ")" : "")
      + " ; " + fmt.format(s) + " quartier" + (s > 1 ? "s" : "") + " 2015 sorti" + (s > 1 ? "s" : "") + " de la carte"
      + (s ? " (" + r.qpv_sortis.slice(0, 8).map(function (q) { return q.nom_qp + " " + q.code_qp; }).join(", ") + (s > 8 ? "…" : "") + ")" : "") + ".";
    var liste = vider(document.getElementById("transition-avertissements"));
    (r.avertissements || []).forEach(function (a) { liste.appendChild(el("li", a)); });
  }

  function charger(detail) {
    var mien = ++jeton;
    if (NIVEAUX.indexOf(detail.niveau) < 0) {
      bloc.hidden = true; courant = null; bloc.dataset.territoire = detail.code; return;
    }
    lire(url(detail.code, detail.millesime)).then(function (r) {
      if (mien !== jeton) { return; }
      courant = r;
      afficher();
      bloc.dataset.territoire = r.territoire.code;  // the territory the table now shows
      bloc.hidden = false;
    }).catch(function () { if (mien === jeton) { bloc.hidden = true; } });
  }

  corps.addEventListener("essqpv:territoire", function (e) { charger(e.detail); });
  choixDetail.addEventListener("change", afficher);
  choixMesure.addEventListener("change", afficher);
})();
